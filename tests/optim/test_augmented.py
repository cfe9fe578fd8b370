"""ocdl.optim.EMSA with model=: the augmented Hamiltonian's inner maximisation on real
parameters, from layer taps, against ocdl's own emsa solver (continuous: augmented) on the
compiled System of the same network, and the taps' costates against System.costates.

Why bit for bit: p_{t+1} = −∂J/∂x_{t+1} from a tensor hook equals the System's p (autograd seeded
with +1 instead of −1, every op of the reverse pass odd in its seed); the reference p_t =
∇_x H_t(θ^k) is the same backward pass of stage t the System's reverse pass takes; each stage's
augmented Hamiltonian is assembled op for op as System.augmented_hamiltonian; and both sides take
torch's fused Adam per parameter.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import ocdl
from ocdl.errors import SolverError
from ocdl.modelspec import loads_spec
from ocdl.optim.augmented import stages_of
from ocdl.solvers import make_solver

from tests.optim.nets import assert_same, batches, loss_fn, net_of, spec, torch_step

STEPS = 4
CONV_SPEC = """
ocdl: 1
name: optim-conv
input: [2, 6, 6]
stages:
  - {name: conv1, op: conv2d, channels: 3, kernel: 3, padding: 1}
  - {name: bn1, op: batchnorm, eps: 1.0e-4}
  - {name: relu1, op: relu}
  - {name: flat, op: flatten}
  - {name: fc2, op: dense, units: 5}
cost:
  terminal: squared_hinge
"""


class ConvNet(nn.Sequential):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(3, eps=1e-4)
        self.relu1 = nn.ReLU()
        self.flat = nn.Flatten()
        self.fc2 = nn.Linear(3 * 6 * 6, 5)


def conv_twins(seed: int = 0):
    system = loads_spec(CONV_SPEC).compile(seed=seed)
    net = ConvNet()
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(system.theta[name])
    g = torch.Generator().manual_seed(seed)
    data = [(torch.rand(16, 2, 6, 6, generator=g), torch.randint(0, 5, (16,), generator=g))
            for _ in range(2)]
    return system, net, data


def mlp_twins(seed: int = 0, l1: float = 0.0):
    system = spec("real", l1=l1).compile(seed=seed)
    return system, net_of(system), batches(2, size=32)


def run_both(system, net, data, settings, **opt_kw):
    """STEPS steps of make_solver("emsa", settings) and of EMSA(model=net, **opt_kw)."""
    lam = opt_kw.pop("l1", 0.0)
    rules = {"Linear": {"control": ocdl.Real(), "l1": lam}} if lam else {}
    opt = ocdl.optim.EMSA(ocdl.optim.groups(net, rules), model=net, **opt_kw)
    solver = make_solver("emsa", settings)
    state = solver.init(system)
    start = {n: p.detach().clone() for n, p in net.named_parameters()}
    for k in range(STEPS):
        x, y = data[k % len(data)]
        state, metrics = solver.step(system, state, x, y)
        torch_step(net, opt, x, y)
    for n, p in net.named_parameters():
        assert not torch.equal(p.detach(), start[n]), n
    return opt, state, metrics


@pytest.mark.parametrize("twins", ["mlp", "mlp-l1", "conv"])
def test_inner_adam_steps_match_the_emsa_solver_bit_for_bit(twins):
    system, net, data = conv_twins() if twins == "conv" else mlp_twins(l1=1e-4 * (twins != "mlp"))
    opt, _, metrics = run_both(
        system, net, data, {"inner_steps": 5, "inner_lr": 1e-2, "rho_real": 0.3},
        lr=1e-2, inner_steps=5, rho_real=0.3, l1=1e-4 if twins == "mlp-l1" else 0.0)
    assert opt._mode == "augmented"
    assert_same(net, system)  # weights and BatchNorm running statistics
    assert torch.equal(opt.metrics["state_error"], metrics["state_error"])
    assert torch.equal(opt.metrics["costate_error"], metrics["costate_error"])
    assert float(metrics["state_error"]) > 0  # the feasibility terms were in play


def test_inner_lbfgs_matches_the_emsa_solver_bit_for_bit():
    system, net, data = mlp_twins(seed=1)
    run_both(system, net, data, {"inner": "lbfgs", "inner_steps": 3, "inner_lr": 0.1,
                                 "rho_real": 0.3},
             lr=0.1, inner="lbfgs", inner_steps=3, rho_real=0.3)
    assert_same(net, system)


def test_hook_costates_equal_system_costates():
    """p_{t+1} = −∂J/∂x_{t+1} from the taps, and the reference p_t = ∇_x H_t(θ^k), equal the
    System's reverse pass (p_t for stages after the first; stage 0 recomputes, as the solver
    does, since x_0 needs no gradient)."""
    system, net, data = conv_twins(seed=2)
    x, y = data[0]
    opt = ocdl.optim.EMSA(net.parameters(), model=net)
    opt.zero_grad()
    loss_fn(net(x), y).backward()
    stages = {st.tap.module: st for st in stages_of(opt.taps.ready())}
    assert len(stages) == 3
    states = system.forward(x)
    c = system.costates(states, y)
    for t, st in enumerate(system.stages):
        module = getattr(net, st.name)
        if module not in stages:
            continue
        mine = stages[module]
        assert torch.equal(mine.tap.p_next, c.p[t + 1]), st.name
        assert torch.equal(mine.x_next, states.x[t + 1]), st.name
        ref = c.p[t] if t > 0 else system.grad_x_hamiltonian(
            0, [states.x[0]], c.p[1], create_graph=False)[0]
        assert torch.equal(mine.p_ref, ref), st.name


def test_without_the_model_one_adam_step_as_the_solvers_adam_rule():
    """auto without model= is continuous: adam (the first inner step only), bit for bit the
    solver's; with the model the inner steps move the weights elsewhere."""
    system, net, data = mlp_twins(seed=3)
    twin = net_of(system)
    plain = ocdl.optim.EMSA(net.parameters(), lr=1e-2)
    inner = ocdl.optim.EMSA(twin.parameters(), lr=1e-2, model=twin, rho_real=0.3)
    assert plain.taps is None and plain._mode == "adam"
    solver = make_solver("emsa", {"continuous": "adam", "lr": 1e-2})
    state = solver.init(system)
    for k in range(STEPS):
        x, y = data[k % len(data)]
        state, _ = solver.step(system, state, x, y)
        torch_step(net, plain, x, y)
        torch_step(twin, inner, x, y)
    assert_same(net, system)
    assert not torch.equal(twin.fc1.weight, net.fc1.weight)


def test_inplace_relu_after_a_tapped_layer_gives_the_same_step():
    """bn1's output is overwritten by ReLU(inplace=True): p is the hook's gradient of the value
    before it, and x_{t+1} is re-evaluated at θ^k."""
    system, net, data = mlp_twins(seed=4)
    twin = net_of(system)
    twin.relu1 = nn.ReLU(inplace=True)
    opts = [ocdl.optim.EMSA(m.parameters(), lr=1e-2, model=m, rho_real=0.3) for m in (net, twin)]
    for k in range(STEPS):
        x, y = data[k % len(data)]
        for m, o in zip((net, twin), opts):
            torch_step(m, o, x, y)
    for (n, p), q in zip(net.named_parameters(), twin.parameters()):
        assert torch.equal(p, q), n


def test_taps_record_in_training_with_grad_and_zero_grad_forgets_them():
    system, net, data = mlp_twins()
    opt = ocdl.optim.EMSA(net.parameters(), model=net)
    x, _ = data[0]
    with torch.no_grad():
        net(x)
    net.eval()
    net(x)
    assert opt.taps.taps == []
    net.train()
    net(x)
    assert len(opt.taps.taps) == 4 and opt.taps.ready() == []
    opt.zero_grad()
    assert opt.taps.taps == []


def test_errors():
    _, net, data = mlp_twins()
    with pytest.raises(SolverError, match="model=net"):
        ocdl.optim.EMSA(net.parameters(), continuous="augmented")
    with pytest.raises(SolverError, match="inner must be"):
        ocdl.optim.EMSA(net.parameters(), model=net, inner="gd")
    with pytest.raises(SolverError, match="inner_steps"):
        ocdl.optim.EMSA(net.parameters(), model=net, inner_steps=0)
    opt = ocdl.optim.EMSA(net.parameters(), model=net, weight_decay=0.1)
    with pytest.raises(SolverError, match="weight_decay"):
        torch_step(net, opt, *data[0])


def test_ternary_network_with_augmented_batchnorm_matches_the_solver():
    """continuous='augmented' with finite sets: BatchNorm's γ, β take the inner steps (their
    layers tapped), the ternary weights the closed forms after them."""
    system = spec("ternary", l1=1e-6).compile(seed=5)
    net = net_of(system)
    opt = ocdl.optim.EMSA(ocdl.optim.groups(net, {"Linear": {"control": ocdl.Ternary(),
                                                              "l1": 1e-6}}),
                          alpha_batch_size=100, model=net, continuous="augmented",
                          inner_steps=3, rho_real=0.3)
    assert sorted(opt.taps.modules) == ["bn1", "bn2"]
    solver = make_solver("emsa-ternary", {"continuous": "augmented", "inner_steps": 3,
                                          "rho_real": 0.3})
    state = solver.init(system)
    start = net.fc1.weight.detach().clone()
    for k, (x, y) in enumerate(batches(3) * 2):
        state, metrics = solver.step(system, state, x, y)
        torch_step(net, opt, x, y, samples=len(x))
    assert not torch.equal(net.fc1.weight, start)
    assert_same(net, system)
    assert torch.equal(opt.metrics["state_error"], metrics["state_error"])


def test_a_layer_under_autocast_is_refused():
    _, net, data = mlp_twins()
    ocdl.optim.EMSA(net.parameters(), model=net)
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(SolverError,
                                                                       match="autocast"):
        net(data[0][0])


def test_gradient_accumulation_sums_the_calls():
    """Two backward passes before one step: both calls of every layer are in the objective,
    each with its own p."""
    _, net, data = mlp_twins()
    opt = ocdl.optim.EMSA(net.parameters(), model=net)
    opt.zero_grad()
    for x, y in data:
        (loss_fn(net(x), y) / len(data)).backward()
    assert len(opt.taps.ready()) == 8
    opt.step()
    assert opt.taps.taps == [] and float(opt.metrics["state_error"]) > 0


def test_a_reloaded_state_continues_bit_for_bit():
    system, net, data = mlp_twins(seed=6)
    twin = net_of(system)
    a = ocdl.optim.EMSA(net.parameters(), lr=1e-2, model=net, inner_steps=3, rho_real=0.2)
    b = ocdl.optim.EMSA(twin.parameters(), lr=1e-2, model=twin, inner_steps=3, rho_real=5.0)
    for k in range(2):
        torch_step(net, a, *data[k])
    twin.load_state_dict(net.state_dict())
    b.load_state_dict(copy.deepcopy(a.state_dict()))  # torch's load keeps the same tensors
    assert float(b.ocdl_state["rho_real"]) == pytest.approx(0.2)
    for k in range(2):
        torch_step(net, a, *data[k])
        torch_step(twin, b, *data[k])
    for (n, p), q in zip(net.named_parameters(), twin.parameters()):
        assert torch.equal(p, q), n


def test_a_group_added_later_is_tapped():
    _, net, data = mlp_twins()
    opt = ocdl.optim.EMSA([net.fc1.weight], model=net)
    assert sorted(opt.taps.modules) == ["fc1"]
    opt.add_param_group({"params": [net.bn1.weight, net.bn1.bias]})
    assert sorted(opt.taps.modules) == ["bn1", "fc1"]
    torch_step(net, opt, *data[0])
    assert float(opt.metrics["state_error"]) > 0
