"""torch model → spec → System: the same outputs and the same M_t = −∇_θ J as the torch model,
in float64, checked against the torch model itself and autograd on it."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ocdl
from ocdl.modelspec import loads_spec

TOL = 1e-10


class Residual(nn.Module):
    """A small residual net written as plain torch: conv stem, two blocks ``out + x``."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(4)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4, eps=1e-4, momentum=0.2)
        self.conv2 = nn.Conv2d(4, 4, 3, padding="same")
        self.down = nn.Conv2d(4, 6, 1, stride=2)
        self.conv3 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x)))
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.conv2(out)
        x = F.relu(out + x)                    # identity shortcut
        out = self.conv3(x) + self.down(x)     # projection shortcut
        out = torch.relu(out)
        out = self.pool(out)
        return self.fc(out.view(out.size(0), -1))


class Concat(nn.Module):
    """Two branches joined by torch.cat along channels, then a dense head (functional forms)."""

    def __init__(self, p=0.0):  # p > 0: random masks, which torch and ocdl draw differently
        super().__init__()
        self.p = p
        self.a = nn.Conv2d(1, 3, 3, padding=1)
        self.b = nn.Conv2d(1, 2, 1)
        self.bn = nn.BatchNorm2d(5, affine=False)
        self.fc1 = nn.Linear(5 * 3 * 3, 7)
        self.fc_out = nn.Linear(7 + 7, 4)
        self.act = nn.Hardtanh(-0.5, 2.0)

    def forward(self, x):
        y = torch.cat([torch.tanh(self.a(x)), torch.sigmoid(self.b(x))], dim=1)
        y = F.max_pool2d(self.bn(y), 2, stride=2, padding=1)
        h = torch.flatten(y, 1)
        h = self.act(self.fc1(h))
        h = torch.cat((F.relu6(h), F.dropout(h, self.p, self.training)), -1)
        return self.fc_out(h)


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Dropout(0.0), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 5))


def conv_net():
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(6, 8, (3, 1), stride=(1, 2), bias=False),
                         nn.BatchNorm2d(8, eps=1e-3), nn.Sigmoid(), nn.AvgPool2d(2, stride=1),
                         nn.Flatten(), nn.Linear(8 * 1 * 1, 10), nn.BatchNorm1d(10))


CASES = {"mlp": (mlp, (3, 2, 2), 5), "conv": (conv_net, (3, 8, 8), 10),
         "residual": (Residual, (2, 8, 8), 3), "concat": (Concat, (1, 4, 4), 4)}


def _model(case):
    make, shape, classes = CASES[case]
    torch.manual_seed(1)
    net = make().double()
    # non-trivial running statistics and affine parameters
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.3, 0.3)
    return net, shape, classes


def _batch(shape, classes, n=6):
    g = torch.Generator().manual_seed(2)
    return (torch.randn((n, *shape), generator=g, dtype=torch.float64),
            torch.randint(classes, (n,), generator=g))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("train", [False, True])
def test_outputs_and_M_match_torch(case, train):
    """x_T and M = −∇_θ J of the System equal the torch model's output and −autograd of the
    same cross-entropy J, in evaluation (running statistics) and training (batch statistics)."""
    net, shape, classes = _model(case)
    imported = ocdl.from_torch(net, input_shape=shape)
    system = imported.system(dtype=torch.float64)
    x, y = _batch(shape, classes)
    net.train(train)
    out = net(x)
    J = F.cross_entropy(out, y)
    params = dict(net.named_parameters())
    grads = torch.autograd.grad(J, list(params.values()))
    states = system.forward(x, train=train)
    assert (states.output - out).abs().max().item() < TOL
    co = system.costates(states, y)
    assert abs(co.J.item() - J.item()) < TOL
    assert set(imported.parameters.values()) == set(params)
    for name, pname in imported.parameters.items():
        g = grads[list(params).index(pname)]
        assert (co.M[name] + g).abs().max().item() < TOL, name
    if train:  # both updated their running statistics by the same rule
        for st in system.all_stages():
            for k, b in st.buffers.items():
                torch_name = [m for m, s in imported.stages.items() if s == st.name][0]
                ref = dict(net.named_buffers())[f"{torch_name}.{k}"]
                assert (b - ref).abs().max().item() < TOL


def test_residual_and_concat_become_merges():
    net, shape, _ = _model("residual")
    spec = ocdl.from_torch(net, input_shape=shape).spec
    adds = [s for s in spec.stages if s.op == "add"]
    assert len(adds) == 2 and all(len(s.inputs) == 2 for s in adds)
    spec = ocdl.from_torch(Concat(p=0.3), input_shape=(1, 4, 4)).spec
    assert next(s for s in spec.stages if s.op == "dropout").params == {"p": 0.3}
    cats = [s for s in spec.stages if s.op == "concat"]
    assert [s.params["axis"] for s in cats] == [0, 0]
    pool = next(s for s in spec.stages if s.op == "maxpool")
    assert pool.params["padding"] == (1, 1) and pool.params["kernel"] == (2, 2)
    assert pool.params["stride"] is None  # the pool's default: the window
    assert next(s for s in spec.stages if s.op == "hardtanh").params == {"min": -0.5,
                                                                          "max": 2.0}


def test_arguments_carry_over_exactly():
    net, shape, _ = _model("residual")
    st = {s.name: s for s in ocdl.from_torch(net, input_shape=shape).spec.stages}
    assert st["bn1"].params == {"eps": 1e-4, "momentum": 0.2, "affine": True}
    assert st["conv2"].params["padding"] == (1, 1) and st["conv2"].params["bias"] is True
    assert st["stem"].params["bias"] is False
    assert st["down"].params["stride"] == (2, 2) and st["down"].params["kernel"] == (1, 1)
    assert st["pool"].op == "avgpool" and st["pool"].params["kernel"] == (4, 4)


@pytest.mark.parametrize("case", list(CASES))
def test_yaml_round_trip(case, tmp_path):
    """The saved YAML reads back to the same spec, and the System compiled from the file (its
    initial_controls beside it) predicts what the torch model does."""
    net, shape, classes = _model(case)
    imported = ocdl.from_torch(net, input_shape=shape)
    path = imported.save(tmp_path / "net.yaml")
    assert (tmp_path / "net.controls.pt").is_file()
    loaded = ocdl.load_spec(path)
    assert loaded == imported.spec
    assert loads_spec(imported.to_yaml()) == imported.spec
    system = ocdl.compile(str(path), dtype=torch.float64)
    x, _ = _batch(shape, classes)
    net.eval()
    assert (system.predict(x) - net(x)).abs().max().item() < TOL


def test_functional_reshapes_and_methods():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 3)
            self.skip = nn.Identity()

        def forward(self, x):
            x = x.contiguous().relu()
            x = F.adaptive_max_pool2d(x, (2, 1))
            x = x.reshape(x.shape[0], -1)
            x = self.skip(x).view(-1, 8)
            return self.fc(x).tanh()

    net = Net().double()
    imported = ocdl.from_torch(net, input_shape=(4, 4, 2))
    assert [s.op for s in imported.spec.stages] == ["relu", "maxpool", "flatten", "dense",
                                                    "tanh"]
    x = torch.randn(5, 4, 4, 2, dtype=torch.float64)
    system = imported.system(dtype=torch.float64)
    assert (system.predict(x) - net(x)).abs().max().item() < TOL
