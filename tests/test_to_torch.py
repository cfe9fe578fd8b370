"""``System.to_module`` (:mod:`ocdl.to_torch`) and ``ocdl.api.load_trained``: the network as a
plain torch.nn.Module, checked against ``System.predict`` (float64, random inputs, random
BatchNorm statistics), against an ``nn.Sequential`` written by hand from its state_dict, against
``ocdl evaluate`` on a run trained for real, and under torch.export / torch.jit."""
from __future__ import annotations

import warnings
from collections import OrderedDict

import pytest
import torch
from torch import nn

import ocdl
from ocdl.api import evaluate, load_system, load_trained, solve
from ocdl.errors import ModuleFormError
from ocdl.models import model_path
from ocdl.modelspec import loads_spec
from tests.conftest import ROOT, score_module_like_system

CHAIN = """
ocdl: 1
name: chain
input: [6]
stages:
  - {name: fc1, op: dense, units: 16, bias: false, control: ternary}
  - {name: bn1, op: batchnorm, eps: 1.0e-4}
  - {name: relu1, op: relu}
  - {name: fc2, op: dense, units: 8, control: binary}
  - {name: t2, op: tanh}
  - {name: drop, op: dropout, p: 0.4}
  - {name: fc3, op: dense, units: 5}
  - {name: ht, op: hardtanh, min: -0.5, max: 2.0}
  - {name: sg, op: sigmoid}
cost: {terminal: mse}
"""

CONV = """
ocdl: 1
name: conv
input: [2, 9, 9]
stages:
  - {name: conv-1, op: conv2d, channels: 4, kernel: 3, padding: 1, control: binary}
  - {name: bn1, op: batchnorm, eps: 1.0e-4}
  - {name: relu1, op: relu}
  - {name: mp, op: maxpool, kernel: 2, stride: 2, padding: 1}
  - {name: conv2, op: conv2d, channels: 3, kernel: [2, 3], stride: [1, 2], control: ternary}
  - {name: ap, op: avgpool, kernel: 2, stride: 1}
  - {name: flat, op: flatten}
  - {name: fc, op: dense, units: 5, bias: false, control: ternary}
  - {name: bn2, op: batchnorm}
cost: {terminal: cross_entropy}
"""

RESIDUAL = """
ocdl: 1
name: residual
input: [6]
stages:
  - {name: fc0, op: dense, units: 8}
  - name: block-1
    op: residual
    h: 0.5
    stages:
      - {name: a1, op: dense, units: 8, control: ternary}
      - {name: abn, op: batchnorm}
      - {name: at, op: tanh}
      - {name: a2, op: dense, units: 8, bias: false}
  - {name: block2, op: residual, stages: [{name: b1, op: dense, units: 8}, {name: br, op: relu}]}
  - {name: sum, op: add, inputs: [block2, fc0]}
  - {name: cat, op: concat, inputs: [sum, block-1]}
  - {name: out, op: dense, units: 3}
cost: {terminal: cross_entropy}
"""


def compiled(text: str) -> ocdl.System:
    """The spec compiled in float64 with random controls on their sets and random BatchNorm
    statistics (so that every running mean, variance, scale and shift matters)."""
    system = ocdl.compile(loads_spec(text), dtype=torch.float64, seed=3)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for c in system.controls:
            if not c.cset.discrete:
                system.theta[c.name].copy_(torch.randn(c.shape, generator=g, dtype=torch.float64))
        for st in system.all_stages():
            if "running_mean" in st.buffers:
                st.buffers["running_mean"].copy_(torch.randn(st.buffers["running_mean"].shape,
                                                             generator=g))
                st.buffers["running_var"].uniform_(0.5, 2.0, generator=g)
    return system


def inputs(system: ocdl.System, n: int = 7) -> torch.Tensor:
    return torch.randn(n, *system.input_shape, dtype=torch.float64)


def assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=1e-10)


def test_a_chain_is_a_sequential_named_by_its_stages_and_loads_into_one_written_by_hand():
    system = compiled(CHAIN)
    module = system.to_module()
    assert type(module) is nn.Sequential and not module.training
    assert [n for n, _ in module.named_children()] == [st.name for st in system.stages]
    assert [type(m) for m in module] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.Tanh,
                                         nn.Dropout, nn.Linear, nn.Hardtanh, nn.Sigmoid]
    x = inputs(system)
    assert_same(module(x), system.predict(x))
    by_hand = nn.Sequential(OrderedDict(
        fc1=nn.Linear(6, 16, bias=False), bn1=nn.BatchNorm1d(16, eps=1e-4), relu1=nn.ReLU(),
        fc2=nn.Linear(16, 8), t2=nn.Tanh(), drop=nn.Dropout(0.4), fc3=nn.Linear(8, 5),
        ht=nn.Hardtanh(-0.5, 2.0), sg=nn.Sigmoid())).double()
    by_hand.load_state_dict(module.state_dict())  # strict: the same names and shapes
    by_hand.eval()
    assert_same(by_hand(x), system.predict(x))
    # the module holds copies: training the system further leaves it as it was
    before = module.fc1.weight.detach().clone()
    with torch.no_grad():
        system.theta["fc1.weight"].neg_()
    assert torch.equal(module.fc1.weight, before)


def test_a_conv_net_with_batchnorm_and_pooling():
    system = compiled(CONV)
    module = system.to_module()
    x = inputs(system)
    assert_same(module(x), system.predict(x))
    bn1 = system.stages[1].buffers
    assert type(module.bn1) is nn.BatchNorm2d and type(module.bn2) is nn.BatchNorm1d
    assert torch.equal(module.bn1.running_mean, bn1["running_mean"])
    assert torch.equal(module.bn1.running_var, bn1["running_var"])
    by_hand = nn.Sequential(OrderedDict([
        ("conv-1", nn.Conv2d(2, 4, 3, padding=1)), ("bn1", nn.BatchNorm2d(4, eps=1e-4)),
        ("relu1", nn.ReLU()), ("mp", nn.MaxPool2d(2, 2, padding=1)),
        ("conv2", nn.Conv2d(4, 3, (2, 3), stride=(1, 2))), ("ap", nn.AvgPool2d(2, 1)),
        ("flat", nn.Flatten()), ("fc", nn.Linear(9, 5, bias=False)), ("bn2", nn.BatchNorm1d(5))
    ])).double()
    by_hand.load_state_dict(module.state_dict())
    assert_same(by_hand.eval()(x), system.predict(x))


def test_a_residual_net_follows_the_dag_with_a_flat_state_dict():
    system = compiled(RESIDUAL)
    module = system.to_module()
    assert isinstance(module, torch.fx.GraphModule) and not module.training
    x = inputs(system)
    assert_same(module(x), system.predict(x))
    buffers = {f"{st.name}.{k}" for st in system.all_stages() for k in st.buffers}
    counters = {f"{st.name}.num_batches_tracked" for st in system.all_stages() if st.buffers}
    assert set(module.state_dict()) == set(system.theta) | buffers | counters
    for name, value in system.theta.items():
        assert torch.equal(module.get_parameter(name), value)
    # by hand: x1 = W0 x + b0, x2 = x1 + 0.5·g1(x1), x3 = x2 + relu(B x2 + c), out(x3 + x1 ‖ x2)
    sd = {k: v.detach() for k, v in module.state_dict().items()}
    x1 = x @ sd["fc0.weight"].T + sd["fc0.bias"]
    z = x1 @ sd["a1.weight"].T + sd["a1.bias"]
    z = (z - sd["abn.running_mean"]) / torch.sqrt(sd["abn.running_var"] + 1e-5)
    z = torch.tanh(z * sd["abn.weight"] + sd["abn.bias"]) @ sd["a2.weight"].T
    x2 = x1 + 0.5 * z
    x3 = x2 + torch.relu(x2 @ sd["b1.weight"].T + sd["b1.bias"])
    out = torch.cat([x3 + x1, x2], dim=1) @ sd["out.weight"].T + sd["out.bias"]
    torch.testing.assert_close(module(x).detach(), out, rtol=1e-12, atol=1e-12)


def test_discrete_weights_hold_exactly_their_levels():
    system = compiled(CONV.replace("control: binary", "control: {set: levels, values: "
                                   "[-0.5, 0, 0.25, 1]}"))
    module = system.to_module()
    sets = {"conv-1.weight": [-0.5, 0.0, 0.25, 1.0], "conv2.weight": [-1.0, 0.0, 1.0],
            "fc.weight": [-1.0, 0.0, 1.0]}
    for name, levels in sets.items():
        w = module.get_parameter(name)
        assert w.dtype == torch.float64
        assert bool(torch.isin(w, torch.tensor(levels, dtype=w.dtype)).all()), name
        assert len(torch.unique(w)) == len(levels)  # every level is there: a real check
        assert torch.equal(w, system.theta[name])
    binary = compiled(CHAIN).to_module().fc2.weight
    assert set(torch.unique(binary).tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize("spec", [CHAIN, CONV, RESIDUAL], ids=["chain", "conv", "residual"])
def test_it_runs_under_torch_export_and_torch_jit(spec):
    system = compiled(spec)
    module = system.to_module()
    batch = torch.export.Dim("batch", min=2)
    exported = torch.export.export(module, (inputs(system, 5),),
                                   dynamic_shapes=({0: batch},))
    x = inputs(system, 11)  # another batch size
    assert_same(exported.module()(x), system.predict(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated in 2.13
        warnings.filterwarnings("ignore", "The TorchScript type system")  # fx.GraphModule's own
        scripted = torch.jit.script(module)
        traced = torch.jit.trace(module, (inputs(system, 5),))
    assert_same(scripted(x), system.predict(x))
    assert_same(traced(x), system.predict(x))


def test_an_equation_stage_in_a_network_keeps_its_own_forward():
    system = compiled("""
ocdl: 1
name: eqnet
input: [2]
stages:
  - name: dyn
    op: equation
    variables: [x1, x2]
    controls: {a: real, b: {set: box, lo: -1, hi: 1}}
    constants: {dt: 0.1}
    dynamics: {x1: x1 + dt*x2, x2: x2 + dt*(a*tanh(x1) + b)}
  - {name: fc, op: dense, units: 3}
cost: {terminal: mse}
""")
    with torch.no_grad():
        system.theta["dyn.b"].fill_(-0.75)
    module = system.to_module()
    assert type(module.dyn).__name__ == "StageLayer"
    assert set(module.state_dict()) == {"dyn.a", "dyn.b", "fc.weight", "fc.bias"}
    x = inputs(system)
    a = float(system.theta["dyn.a"].detach())  # by hand: the dynamics written out
    h = torch.stack([x[:, 0] + 0.1 * x[:, 1], x[:, 1] + 0.1 * (a * torch.tanh(x[:, 0]) - 0.75)],
                    dim=1)
    by_hand = h @ system.theta["fc.weight"].detach().T + system.theta["fc.bias"].detach()
    torch.testing.assert_close(module(x).detach(), by_hand, rtol=1e-12, atol=1e-12)
    assert_same(torch.export.export(module, (x,)).module()(x), system.predict(x))


def test_systems_without_a_module_form_are_refused_in_one_line():
    lqr = ocdl.compile(str(model_path("lqr-2d")))
    with pytest.raises(ModuleFormError, match="equation-defined system.*load_system") as e:
        lqr.to_module()
    assert "\n" not in str(e.value)
    taken = ocdl.compile(loads_spec(CHAIN.replace("name: relu1", "name: forward")))
    with pytest.raises(ModuleFormError, match="stage 'forward'.*rename the stage"):
        taken.to_module()


SPEC = (ROOT / "tests" / "fixtures" / "specs" / "tiny-mnist-ternary.yaml").read_text()


def test_load_trained_gives_the_module_that_ocdl_evaluate_scores(tmp_path):
    (tmp_path / "net.yaml").write_text(SPEC)
    run = tmp_path / "run"
    solve(tmp_path / "net.yaml", "emsa-ternary", epochs=1, out=run, device="cpu")
    ev = evaluate(run, device="cpu")
    module = load_trained(run, device="cpu")
    system, feeders = load_system(run, device="cpu")
    assert type(module) is nn.Sequential and not module.training
    for name in ("fc1.weight", "fc2.weight"):
        w = module.get_parameter(name)
        assert bool(torch.isin(w, torch.tensor([-1.0, 0.0, 1.0])).all())
        assert torch.equal(w, system.theta[name])
    correct, loss, n = score_module_like_system(module, system, feeders.test)
    assert n == ev.n == 2000
    assert correct / n == ev.acc and 0.15 < ev.acc < 1  # trained: better than chance
    assert loss == pytest.approx(ev.loss, rel=1e-6)
