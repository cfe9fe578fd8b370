"""ocdl.optim's optimizers in a plain torch loop against ocdl's own solvers on the compiled System
of the same network: same θ, batches and settings → torch.equal weights after N steps.

Why bit for bit: M = −.grad equals the System's M (autograd seeded with −1; negation is exact and
every op of the reverse pass is odd in its seed), both sides call the same parts (the batched
closed forms, the running average, torch's fused Adam, the quantizers) per parameter, and
nn.Linear(bias=False) / nn.BatchNorm1d run the same F.linear / F.batch_norm as the System's ops.
"""
from __future__ import annotations

import pytest
import torch

import ocdl
from ocdl.solvers import make_solver
from ocdl.solvers.latent_weights import LatentWeights

from tests.optim.nets import assert_same, batches, net_of, spec, torch_step

STEPS = 6


def run_both(system, solver, opt, net, data, *, samples: bool = False, epoch_at: int = 3):
    """STEPS steps of both on the same batches, with an epoch's end after ``epoch_at``; checks
    that the finite-set weights moved (the comparison would be empty otherwise)."""
    start = {n: p.detach().clone() for n, p in net.named_parameters()}
    state = solver.init(system)
    for k in range(STEPS):
        x, y = data[k % len(data)]
        state, _ = solver.step(system, state, x, y)
        torch_step(net, opt, x, y, **({"samples": len(x)} if samples else {}))
        if k + 1 == epoch_at:  # an epoch boundary: 1 − α ← 0.95 (1 − α)
            state = solver.end_epoch(system, state, 1, progress=0.5)
            opt.end_epoch(progress=0.5)
    assert not torch.equal(net.fc1.weight, start["fc1.weight"])
    return state


@pytest.mark.parametrize("kind,preset", [("ternary", "emsa-ternary"), ("binary", "emsa-binary")])
def test_emsa_matches_the_emsa_preset_bit_for_bit(kind, preset):
    lam = 1e-6 if kind == "ternary" else 0.0  # small: λ > |M̄| would zero every weight
    system = spec(kind, l1=lam).compile(seed=3)
    net = net_of(system)
    cset = ocdl.Ternary() if kind == "ternary" else ocdl.Binary()
    opt = ocdl.optim.EMSA(ocdl.optim.groups(net, {"Linear": {"control": cset, "l1": lam}}),
                          lr=1e-3, alpha_batch_size=100)  # the presets' B₀; ρ: the paper's
    assert opt.rho == (0.25 if kind == "ternary" else 0.5)
    state = run_both(system, make_solver(preset), opt, net, batches(3), samples=True)
    assert_same(net, system)
    for name in ("fc1.weight", "fc2.weight"):
        assert torch.equal(opt.state[net.get_parameter(name)]["mbar"], state["mbar"][name])
    assert opt.ocdl_state["alpha"] == state["alpha"]


def test_emsa_with_a_nonzero_target_and_keep_units_matches_the_solver():
    system = spec("ternary", l1=1e-6).compile(seed=5)
    net = net_of(system)
    opt = ocdl.optim.EMSA(ocdl.optim.groups(net, {"Linear": {"control": ocdl.Ternary(),
                                                              "l1": 1e-6}}),
                          nonzero_target=0.3, nonzero_rate=0.2, keep_units=True)
    solver = make_solver("emsa-ternary", {"nonzero_target": 0.3, "nonzero_rate": 0.2,
                                          "keep_units": True, "alpha_batch_size": None})
    state = run_both(system, solver, opt, net, batches(3))
    assert_same(net, system)
    assert torch.equal(opt.ocdl_state["log_lambda_scale"], state["log_lambda_scale"])
    assert float(state["log_lambda_scale"]) != 0.0


def test_bop_matches_the_bop_preset_bit_for_bit():
    system = spec("binary").compile(seed=1)
    net = net_of(system)
    opt = ocdl.optim.Bop(ocdl.optim.groups(net, {"Linear": ocdl.Binary()}), lr=1e-3,
                         threshold=1e-8, gamma=1e-4)
    state = run_both(system, make_solver("bop"), opt, net, batches(3))
    assert_same(net, system)
    assert torch.equal(opt.state[net.fc1.weight]["m"], state["m"]["fc1.weight"])
    assert float(opt.metrics["flips"]) > 0


@pytest.mark.parametrize("name,kind,init", [("binaryconnect", "binary", "uniform"),
                                            ("twn", "ternary", "kaiming_uniform")])
def test_latent_optimizers_match_their_presets_bit_for_bit(name, kind, init):
    system = spec(kind).compile(seed=2)
    # the solver draws its latent weights W with its seed; the module starts from the same W
    latent = LatentWeights.draw(system, ["fc1.weight", "fc2.weight"], init, 0)
    net = net_of(system)
    with torch.no_grad():
        net.fc1.weight.copy_(latent["fc1.weight"])
        net.fc2.weight.copy_(latent["fc2.weight"])
    cset = ocdl.Binary() if kind == "binary" else ocdl.Ternary()
    cls = ocdl.optim.BinaryConnect if name == "binaryconnect" else ocdl.optim.TWN
    opt = cls(ocdl.optim.groups(net, {"Linear": cset}), lr=1e-3)
    state = run_both(system, make_solver(name), opt, net, batches(3))
    assert_same(net, system)
    for n in ("fc1.weight", "fc2.weight"):
        assert torch.equal(opt.state[net.get_parameter(n)]["latent"], state["latent"][n])


def test_msa_matches_the_msa_preset_bit_for_bit():
    system = spec("ternary", l1=1e-6).compile(seed=4)
    net = net_of(system)
    opt = ocdl.optim.MSA(ocdl.optim.groups(net, {"Linear": {"control": ocdl.Ternary(),
                                                             "l1": 1e-6}}), lr=0.01)
    run_both(system, make_solver("msa"), opt, net, batches(3))
    assert_same(net, system)
