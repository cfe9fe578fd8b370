"""What from_torch cannot map is refused with one TorchImportError naming the module path,
the layer or function, and how to fix it."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ocdl
from ocdl.errors import OcdlError, TorchImportError


def _refused(net, shape, *patterns):
    with pytest.raises(TorchImportError) as e:
        ocdl.from_torch(net, input_shape=shape)
    msg = str(e.value)
    for p in patterns:
        assert p in msg, msg
    assert "\n" not in msg
    return msg


class Fn(nn.Module):
    """A module whose forward is the given function of (self, x)."""

    def __init__(self, fn, **layers):
        super().__init__()
        self.fn = fn
        for k, v in layers.items():
            setattr(self, k, v)

    def forward(self, x):
        return self.fn(self, x)


def test_it_is_an_ocdl_error():
    assert issubclass(TorchImportError, OcdlError)


@pytest.mark.parametrize("layer, shape, patterns", [
    (nn.Sequential(nn.Linear(4, 4), nn.GELU()), (4,), ["1 (GELU)", "GELU has no ocdl op",
                                                       "ocdl maps Linear"]),
    (nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1)), (4,),
     ["1 (Softmax)", "cross_entropy applies the softmax"]),
    (nn.Sequential(nn.Conv2d(2, 4, 3, dilation=2)), (2, 8, 8),
     ["0 (Conv2d)", "dilation=(2, 2)", "use dilation=1"]),
    (nn.Sequential(nn.Conv2d(2, 4, 3, groups=2)), (2, 8, 8), ["0 (Conv2d)", "groups=2"]),
    (nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect")), (2, 8, 8),
     ["padding_mode='reflect'"]),
    (nn.Sequential(nn.Conv2d(2, 4, 2, padding="same")), (2, 8, 8), ["even kernel"]),
    (nn.Sequential(nn.BatchNorm1d(4, momentum=None)), (4,), ["momentum=None"]),
    (nn.Sequential(nn.BatchNorm1d(4, track_running_stats=False)), (4,),
     ["track_running_stats=False"]),
    (nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)), (1, 5, 5), ["ceil_mode=True"]),
    (nn.Sequential(nn.MaxPool2d(3, dilation=2)), (1, 9, 9), ["dilation"]),
    (nn.Sequential(nn.AvgPool2d(3, padding=1, count_include_pad=False)), (1, 6, 6),
     ["count_include_pad=False"]),
    (nn.Sequential(nn.AdaptiveAvgPool2d(4)), (1, 6, 6), ["6×6 to 4×4"]),
    (nn.Sequential(nn.Conv2d(1, 2, 1), nn.Dropout2d(0.1)), (1, 3, 3),
     ["Dropout2d has no ocdl op"]),
    (nn.Sequential(nn.Linear(2, 2)), (2, 2), ["0 (Linear)", "samples of shape [2, 2]",
                                              "flatten"]),
])
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_unsupported_layers_and_arguments(layer, shape, patterns):
    _refused(layer, shape, *patterns)


def test_functions_and_methods():
    _refused(Fn(lambda s, x: torch.exp(s.fc(x)), fc=nn.Linear(3, 3)), (3,),
             "exp", "has no ocdl op", "in Fn.forward")
    _refused(Fn(lambda s, x: s.fc(x).softmax(-1), fc=nn.Linear(3, 3)), (3,),
             ".softmax() has no ocdl op")
    _refused(Fn(lambda s, x: s.fc(x) + 1.0, fc=nn.Linear(3, 3)), (3,),
             "not a tensor computed by the network")
    _refused(Fn(lambda s, x: s.fc(x) + s.fc2(x)[:, :1], fc=nn.Linear(3, 3),
                fc2=nn.Linear(3, 3)), (3,), "getitem")
    _refused(Fn(lambda s, x: torch.cat([s.fc(x), s.fc2(x)], 0), fc=nn.Linear(3, 3),
                fc2=nn.Linear(3, 3)), (3,), "batch dimension")
    _refused(Fn(lambda s, x: s.fc(x).view(-1, 6), fc=nn.Linear(3, 4)), (3,),
             "reshapes [3, 4] to [2, 6]")
    _refused(Fn(lambda s, x: torch.flatten(s.c(x)), c=nn.Conv2d(1, 1, 1)), (1, 2, 2),
             "reshapes [3, 1, 2, 2] to [12]")
    _refused(Fn(lambda s, x: F.linear(x, s.w), w=nn.Parameter(torch.ones(2, 3))), (3,),
             "reads the tensor 'w' directly")


def test_shared_layers_and_forms_of_forward():
    _refused(Fn(lambda s, x: s.fc(s.fc(x)), fc=nn.Linear(3, 3)), (3,), "fc (Linear)",
             "called twice")
    _refused(Fn(lambda s, x: s.fc(x) + s.fc(x).relu(), fc=nn.Linear(3, 3)), (3,),
             "called twice")
    _refused(Fn(lambda s, x: x, fc=nn.Linear(3, 3)), (3,), "returns its input")
    _refused(Fn(lambda s, x: (s.fc(x), s.fc2(x)), fc=nn.Linear(3, 3), fc2=nn.Linear(3, 3)),
             (3,), "not one tensor")

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            if x.sum() > 0:  # control flow on data: not a fixed graph
                return self.fc(x)
            return x

    _refused(Branchy(), (3,), "torch.fx cannot trace Branchy", "control flow")


def test_bad_input_shapes():
    _refused(nn.Sequential(nn.Linear(4, 2)), (5,), "fails at 0 (Linear)", "input_shape")
    with pytest.raises(TorchImportError, match="input_shape"):
        ocdl.from_torch(nn.Sequential(nn.Linear(4, 2)), input_shape=(0,))
    with pytest.raises(TorchImportError, match="torch.nn.Module"):
        ocdl.from_torch(lambda x: x, input_shape=(4,))


def test_the_terminal_cost_must_fit():
    with pytest.raises(TorchImportError, match="does not compile"):
        ocdl.from_torch(nn.Sequential(nn.Conv2d(1, 2, 1)), input_shape=(1, 2, 2))
    with pytest.raises(TorchImportError, match="terminal"):
        ocdl.from_torch(nn.Sequential(nn.Linear(2, 2)), input_shape=(2,), cost="hinge")
