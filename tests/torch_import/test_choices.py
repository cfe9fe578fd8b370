"""Control sets by layer name or type, and the start values θ⁰ = Q(W) of the module's weights."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import ocdl
from ocdl.errors import TorchImportError


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(6, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(),
                                      nn.Linear(8, 8), nn.ReLU())
        self.fc_out = nn.Linear(8, 3, bias=False)

    def forward(self, x):
        return self.fc_out(self.features(x))


def _imported(controls):
    torch.manual_seed(3)
    net = Net()
    return net, ocdl.from_torch(net, input_shape=(6,), controls=controls)


def test_names_win_over_types():
    net, imp = _imported({"Linear": ocdl.Ternary(), "fc_out": ocdl.Binary(),
                          "features.1": "real"})
    st = {s.name: s for s in imp.spec.stages}
    assert st["features_0"].control == ocdl.Ternary()
    assert st["features_3"].control == ocdl.Ternary()
    assert st["fc_out"].control == ocdl.Binary()
    assert st["features_1"].control is None  # batchnorm: real, the default
    system = imp.system()
    assert system.control["features_0.weight"].cset == ocdl.Ternary()
    assert system.control["features_3.bias"].cset.kind == "real"  # a set applies to weights
    assert system.control["fc_out.weight"].cset == ocdl.Binary()
    assert system.check_sets() == []


def test_start_values_are_the_quantised_weights():
    net, imp = _imported({"features.0": "ternary", "fc_out": "binary",
                          "features.3": {"set": "levels", "values": [-0.5, 0.0, 0.5]}})
    w = net.features[0].weight.detach()
    delta = 0.7 * w.abs().mean()  # TWN's threshold
    expect = torch.sign(w) * (w.abs() > delta)
    assert torch.equal(imp.initial["features_0.weight"], expect)
    wo = net.fc_out.weight.detach()
    assert torch.equal(imp.initial["fc_out.weight"], torch.where(wo >= 0, 1.0, -1.0))
    w3 = net.features[3].weight.detach()
    near = torch.tensor([-0.5, 0.0, 0.5])[(w3.unsqueeze(-1) - torch.tensor([-0.5, 0.0, 0.5]))
                                           .abs().argmin(-1)]
    assert torch.equal(imp.initial["features_3.weight"], near)
    # real controls and statistics are carried over exactly
    assert torch.equal(imp.initial["features_3.bias"], net.features[3].bias.detach())
    assert torch.equal(imp.initial["features_1.running_var"], net.features[1].running_var)
    system = imp.system()
    assert torch.equal(system.theta["features_0.weight"].detach(), expect)


def test_box_clips_and_mapping_sets_each_control():
    net, imp = _imported({"features.3": {"weight": {"set": "box", "lo": -0.1, "hi": 0.1},
                                         "bias": "binary"}})
    w = net.features[3].weight.detach()
    assert torch.equal(imp.initial["features_3.weight"], w.clamp(-0.1, 0.1))
    assert set(imp.initial["features_3.bias"].unique().tolist()) <= {-1.0, 1.0}
    st = {s.name: s for s in imp.spec.stages}
    assert st["features_3"].control == {"weight": ocdl.Box(-0.1, 0.1), "bias": ocdl.Binary()}


def test_a_key_naming_no_layer_is_refused():
    with pytest.raises(TorchImportError, match=r"'fc_ot' names no layer.*did you mean 'fc_out'"):
        _imported({"fc_ot": "binary"})
    with pytest.raises(TorchImportError, match="names no layer"):
        _imported({"ReLU": "binary"})  # a layer without weights


def test_an_unknown_set_is_refused():
    with pytest.raises(TorchImportError, match="unknown control set 'quaternary'"):
        _imported({"Linear": "quaternary"})
