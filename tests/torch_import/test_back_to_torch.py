"""The whole way round: a residual net written in plain torch (the blocks of
examples/torch_resnet.py) → ocdl.from_torch with ternary convolutions → ocdl.api.solve with
E-MSA → ocdl.api.load_trained, a plain nn.Module whose test accuracy is ocdl evaluate's."""
from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ocdl
from ocdl.api import evaluate, load_system, load_trained, solve
from tests.conftest import ROOT, score_module_like_system


def example_block():
    spec = importlib.util.spec_from_file_location("torch_resnet",
                                                  ROOT / "examples" / "torch_resnet.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.BasicBlock


class SmallResNet(nn.Module):
    """conv(1→4)-BN-ReLU, two of the example's basic blocks (the second with a projection
    shortcut), global average pooling and a linear classifier, for 1×28×28 images."""

    def __init__(self):
        super().__init__()
        block = example_block()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.layers = nn.Sequential(block(4, 4), block(4, 8, stride=2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.pool(self.layers(F.relu(self.bn(self.conv(x)))))
        return self.fc(torch.flatten(x, 1))


def test_a_torch_resnet_trains_with_emsa_ternary_and_comes_back_as_a_module(tmp_path):
    torch.manual_seed(0)
    imported = ocdl.from_torch(SmallResNet(), input_shape=(1, 28, 28),
                               controls={"Conv2d": ocdl.Ternary()},
                               data={"name": "mnist-subset", "batch_size": 50, "limit": 300})
    path = imported.save(tmp_path / "resnet.yaml")
    assert "initial_controls" in path.read_text()
    run = tmp_path / "run"
    result = solve(path, "emsa-ternary", epochs=1, out=run, device="cpu")
    assert result.status == "completed"
    ev = evaluate(run, device="cpu")
    module = load_trained(run, device="cpu")
    system, feeders = load_system(run, device="cpu")
    assert isinstance(module, torch.fx.GraphModule) and not module.training
    convs = [n for n, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 6  # stem, two per block, one projection
    for name in convs:
        w = module.get_submodule(name).weight
        assert bool(torch.isin(w, torch.tensor([-1.0, 0.0, 1.0])).all())
    correct, loss, n = score_module_like_system(module, system, feeders.test, tol=1e-5)
    assert n == ev.n and correct / n == ev.acc
    assert loss == pytest.approx(ev.loss, rel=1e-5)
