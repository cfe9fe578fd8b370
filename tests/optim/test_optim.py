"""ocdl.optim in a user's loop: the update rules against independent references, the sets on
param groups, state dicts, GradScaler, gradient accumulation and LR schedulers."""
from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

import ocdl
from ocdl.solvers.hamiltonian_argmax import closed_forms
from tests.optim.nets import Net, batches, loss_fn, net_of, spec, torch_step

# ------------------------------------------------------------------ the rules, by hand


def one_tensor(cset, values, **kw):
    p = nn.Parameter(torch.tensor(values, dtype=torch.float64))
    return p, ocdl.optim.EMSA([{"params": [p], "control": cset, "l1": kw.pop("l1", 0.0)}], **kw)


@pytest.mark.parametrize("kind", ["binary", "ternary", "levels"])
def test_an_emsa_step_is_the_closed_form_argmax_against_the_running_average(kind):
    cset = {"binary": ocdl.Binary(), "ternary": ocdl.Ternary(),
            "levels": ocdl.Levels(values=(-1.0, -0.5, 0.0, 0.5, 1.0))}[kind]
    g = torch.Generator().manual_seed(0)
    theta0 = cset.init((6, 7), g, torch.float64)
    p, opt = one_tensor(cset, theta0.tolist(), l1=0.01, rho=0.3, alpha=0.8)
    mbar0 = opt.state[p]["mbar"].clone()
    assert mbar0.abs().max() <= 1e-6 and mbar0.abs().max() > 0  # U(±1e-6)
    grad = torch.randn(6, 7, generator=g, dtype=torch.float64)
    p.grad = grad.clone()
    opt.step()
    mbar = 0.8 * mbar0 + 0.2 * (-grad)  # M̄ ← α M̄ + (1−α) M, M = −∇J
    assert torch.allclose(opt.state[p]["mbar"], mbar, rtol=0, atol=1e-15)
    rk = closed_forms.rho_k(mbar, theta0, 0.3, cset.values)
    lam = 0.0 if kind == "binary" else 0.01  # λ|θ| is constant on {±1}
    want = closed_forms.closed_form(cset, mbar, theta0, rk, lam)
    assert torch.equal(p.detach(), want)
    assert not torch.equal(want, theta0)
    assert torch.equal(p.grad, grad)  # .grad is left as it was


def test_msa_steps_real_parameters_as_sgd_and_finite_ones_to_the_argmax_of_h():
    w = nn.Parameter(torch.tensor([[1.0, 0.0, -1.0, 1.0]], dtype=torch.float64))
    b = nn.Parameter(torch.tensor([0.5, -0.25], dtype=torch.float64))
    opt = ocdl.optim.MSA([{"params": [w], "control": ocdl.Ternary(), "l1": 0.1},
                          {"params": [b]}], lr=0.1)
    w.grad = torch.tensor([[0.05, -0.3, 0.3, 0.2]], dtype=torch.float64)
    b.grad = torch.tensor([1.0, -2.0], dtype=torch.float64)
    opt.step()
    # argmax_l M l − 0.1|l| with M = −grad: 0 where |M| < λ, sign(M) where |M| > λ
    assert w.tolist() == [[0.0, 1.0, -1.0, -1.0]]
    assert torch.allclose(b.detach(), torch.tensor([0.4, -0.05], dtype=torch.float64))


def test_bop_flips_where_the_gradient_average_agrees_with_the_weight():
    w = nn.Parameter(torch.tensor([1.0, 1.0, -1.0, -1.0]))
    opt = ocdl.optim.Bop([{"params": [w], "control": ocdl.Binary()}], gamma=0.5, threshold=0.1)
    w.grad = torch.tensor([1.0, 0.1, -1.0, 1.0])
    opt.step()  # m = 0.5 g = [0.5, 0.05, -0.5, 0.5]; flip where θ·m > 0.1
    assert w.tolist() == [-1.0, 1.0, 1.0, -1.0]
    assert torch.equal(opt.state[w]["m"], torch.tensor([0.5, 0.05, -0.5, 0.5]))


def test_binaryconnect_takes_a_clipped_glorot_scaled_adam_step_on_the_latent_weights():
    torch.manual_seed(0)
    w = nn.Parameter(torch.empty(3, 4).uniform_(-1, 1))
    w0 = w.detach().clone()
    opt = ocdl.optim.BinaryConnect([{"params": [w], "control": ocdl.Binary()}], lr=0.01)
    assert torch.equal(w.detach(), torch.where(w0 >= 0, 1.0, -1.0))
    ref = nn.Parameter(w0.clone())  # torch's Adam at lr/H, H = sqrt(1.5/(fan_in + fan_out))
    adam = torch.optim.Adam([ref], lr=0.01 / (1.5 / 7) ** 0.5, fused=True)
    for k in range(3):
        g = torch.randn(3, 4)
        w.grad, ref.grad = g.clone(), g.clone()
        opt.step()
        adam.step()
        with torch.no_grad():
            ref.clamp_(-1, 1)
    assert torch.equal(opt.state[w]["latent"], ref.detach())
    assert torch.equal(w.detach(), torch.where(ref >= 0, 1.0, -1.0))


# ------------------------------------------------------------------ sets on param groups


def test_groups_match_by_parameter_then_module_name_then_type_and_keep_biases_real():
    net = nn.Sequential()
    net.add_module("fc", nn.Linear(4, 8))
    net.add_module("bn", nn.BatchNorm1d(8))
    net.add_module("fc_out", nn.Linear(8, 2, bias=False))
    gs = ocdl.optim.groups(net, {"Linear": {"control": ocdl.Ternary(), "l1": 1e-7},
                                 "fc_out": ocdl.Binary(), "fc.bias": ocdl.Box(-1, 1)})
    got = {n: (g["control"].kind, g.get("l1")) for g in gs for n, _ in g["params"]}
    assert got == {"fc.weight": ("ternary", 1e-7), "fc.bias": ("box", None),
                   "bn.weight": ("real", None), "bn.bias": ("real", None),
                   "fc_out.weight": ("binary", None)}
    opt = ocdl.optim.EMSA(gs)
    assert opt.param_groups[0]["param_names"] == ["fc.weight"]
    assert set(net.fc.weight.detach().unique().tolist()) <= {-1.0, 0.0, 1.0}
    with pytest.raises(ocdl.SolverError, match=r"\['Linaer'\] match no parameter.*Linear"):
        ocdl.optim.groups(net, {"Linaer": ocdl.Ternary()})


def test_parameters_are_put_into_their_set_at_construction_or_refused():
    torch.manual_seed(1)
    w = nn.Parameter(torch.randn(50, 40) * 0.05)  # a real init at any scale
    w0 = w.detach().clone()
    ocdl.optim.EMSA([{"params": [w], "control": ocdl.Ternary()}])
    delta = 0.7 * w0.abs().mean()  # TWN's threshold: scale-free
    assert torch.equal(w.detach(), torch.sign(w0) * (w0.abs() > delta))
    v = nn.Parameter(torch.randn(5, 4))
    ocdl.optim.EMSA([{"params": [v], "control": ocdl.Binary()}], put_in="uniform")
    assert set(v.detach().unique().tolist()) == {-1.0, 1.0}
    inside = nn.Parameter(torch.tensor([[1.0, 0.0, -1.0]]))
    ocdl.optim.Bop([{"params": [nn.Parameter(torch.ones(2))], "control": ocdl.Binary()}])
    ocdl.optim.EMSA([{"params": [inside], "control": ocdl.Ternary()}], put_in="refuse")
    assert inside.tolist() == [[1.0, 0.0, -1.0]]  # already in its set: left as it is
    with pytest.raises(ocdl.ControlSetError, match="not in its ternary .*put_in='quantize'"):
        ocdl.optim.EMSA([{"params": [nn.Parameter(torch.randn(3))], "control": ocdl.Ternary()}],
                        put_in="refuse")


def test_sets_an_optimizer_cannot_train_and_malformed_groups_are_refused():
    p = nn.Parameter(torch.randn(3))
    with pytest.raises(ocdl.ControlSetError, match="Bop cannot train a ternary"):
        ocdl.optim.Bop([{"params": [p], "control": ocdl.Ternary()}])
    with pytest.raises(ocdl.SolverError, match="'control' must be an ocdl control set"):
        ocdl.optim.EMSA([{"params": [p], "control": "ternary"}])
    with pytest.raises(ocdl.SolverError, match="setting 'alpha' must be in"):
        ocdl.optim.EMSA([p], alpha=1.5)
    q = nn.Parameter(torch.ones(2))
    opt = ocdl.optim.EMSA([{"params": [p, q], "control": ocdl.Ternary()}], alpha_batch_size=100)
    p.grad = torch.ones(3)
    with pytest.raises(ocdl.SolverError, match="have no gradient while others do"):
        opt.step(samples=10)
    q.grad = torch.ones(2)
    with pytest.raises(ocdl.SolverError, match=r"opt.step\(samples=len\(x\)\)"):
        opt.step()


def test_alpha_batch_size_averages_with_alpha_to_the_batch_share_and_end_epoch_decays_it():
    p, opt = one_tensor(ocdl.Binary(), [1.0, -1.0], alpha=0.9, alpha_batch_size=100)
    m0 = opt.state[p]["mbar"].clone()
    p.grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
    opt.step(samples=50)
    w = 1 - 0.9 ** 0.5
    assert torch.allclose(opt.state[p]["mbar"], m0 + w * (-p.grad - m0), rtol=0, atol=1e-15)
    opt.end_epoch()
    assert opt.ocdl_state["alpha"] == pytest.approx(1 - 0.95 * 0.1)


# ------------------------------------------------------------------ state dicts


def make(kind_opt, seed=0):
    """(system-free) net and optimizer of one of the kinds, from a fixed start."""
    system = spec("binary" if kind_opt in ("bop", "binaryconnect", "emsa-binary") else
                  "ternary", l1=1e-6).compile(seed=seed)
    net = net_of(system)
    cset = ocdl.Binary() if "bin" in kind_opt or kind_opt == "bop" else ocdl.Ternary()
    gs = ocdl.optim.groups(net, {"Linear": {"control": cset, "l1": 1e-6}})
    if kind_opt in ("bop", "binaryconnect"):
        for g in gs:
            g.pop("l1", None)
    opt = {"emsa-ternary": lambda: ocdl.optim.EMSA(gs, nonzero_target=0.4, nonzero_rate=0.1),
           "emsa-binary": lambda: ocdl.optim.EMSA(gs),
           "msa": lambda: ocdl.optim.MSA(gs),
           "bop": lambda: ocdl.optim.Bop(gs, gamma=1e-2),
           "binaryconnect": lambda: ocdl.optim.BinaryConnect(gs),
           "twn": lambda: ocdl.optim.TWN(gs)}[kind_opt]()
    return net, opt


@pytest.mark.parametrize("kind_opt", ["emsa-ternary", "emsa-binary", "msa", "bop",
                                      "binaryconnect", "twn"])
def test_continuing_after_a_reload_equals_an_uninterrupted_run(kind_opt):
    data = batches(4)
    net, opt = make(kind_opt)
    for x, y in data[:2]:
        torch_step(net, opt, x, y)
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, buf)
    opt.end_epoch()
    for x, y in data[2:]:
        torch_step(net, opt, x, y)

    net2, opt2 = make(kind_opt)  # a new process: fresh objects, then the saved states
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    net2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    opt2.end_epoch()
    for x, y in data[2:]:
        torch_step(net2, opt2, x, y)
    for (n, a), b in zip(net.state_dict().items(), net2.state_dict().values()):
        assert torch.equal(a, b), n
    assert opt2.ocdl_state["iteration"] == opt.ocdl_state["iteration"] == 4
    if kind_opt == "emsa-ternary":
        assert torch.equal(opt2.ocdl_state["log_lambda_scale"], opt.ocdl_state["log_lambda_scale"])


def test_a_state_of_other_sets_or_another_optimizer_is_refused():
    net, opt = make("emsa-ternary")
    sd = opt.state_dict()
    assert sd["param_groups"][0]["control"] == {"set": "ternary"}
    sd["param_groups"][0]["control"] = {"set": "binary"}
    with pytest.raises(ocdl.SolverError, match="saved with a .*binary.* set"):
        opt.load_state_dict(sd)
    _, bop = make("bop")
    with pytest.raises(ocdl.SolverError, match="saved by Bop, not ocdl.optim.EMSA"):
        opt.load_state_dict(bop.state_dict())


# ------------------------------------------------------------------ torch's machinery


def test_gradscaler_skips_inf_steps_and_otherwise_equals_unscaled_steps():
    data = batches(3)
    net, opt = make("emsa-ternary")
    ref_net, ref_opt = make("emsa-ternary")
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    for k, (x, y) in enumerate(data):
        torch_step(ref_net, ref_opt, x, y)
        opt.zero_grad()
        scaler.scale(loss_fn(net(x), y)).backward()
        scaler.step(opt)
        scaler.update()
    for n, p in net.named_parameters():
        assert torch.equal(p, ref_net.get_parameter(n)), n  # scaling by 2^k is exact
    before = copy.deepcopy(net.state_dict())
    mbar = opt.state[net.fc1.weight]["mbar"].clone()
    opt.zero_grad()
    scaler.scale(loss_fn(net(data[0][0]), data[0][1])).backward()
    net.fc2.weight.grad[0, 0] = float("inf")
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() == 2.0 ** 9  # the step was found inf and skipped
    for n, p in net.named_parameters():
        assert torch.equal(p, before[n]), n
    assert torch.equal(opt.state[net.fc1.weight]["mbar"], mbar)
    assert opt.ocdl_state["iteration"] == 3


def test_gradient_accumulation_equals_the_whole_batch():
    """Without batchnorm (whose statistics are per micro-batch), two half batches with the loss
    halved give the gradient of the whole batch up to rounding, so the same step."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(12, 24, bias=False), nn.ReLU(), nn.Linear(24, 5)).double()
    net2 = copy.deepcopy(net)
    start = net[0].weight.detach().clone()
    opts = [ocdl.optim.EMSA(ocdl.optim.groups(n, {"Linear": ocdl.Ternary()}), alpha=0.5)
            for n in (net, net2)]
    for x, y in batches(3, dtype=torch.float64):
        opts[0].zero_grad()
        loss_fn(net(x), y).backward()
        opts[0].step()
        opts[1].zero_grad()
        for xh, yh in ((x[:32], y[:32]), (x[32:], y[32:])):
            (loss_fn(net2(xh), yh) / 2).backward()
        opts[1].step()
    assert not torch.equal(net[0].weight, start)
    for (n, a), b in zip(net.named_parameters(), net2.parameters()):
        if n.endswith("weight"):
            assert torch.equal(a, b), n
        else:
            assert torch.allclose(a, b, rtol=1e-12, atol=0), n


def test_an_lr_scheduler_schedules_the_real_parameters_adam_as_torchs():
    data = batches(4)
    net, ref = Net(), Net()
    ref.load_state_dict(net.state_dict())
    opt = ocdl.optim.EMSA(net.parameters(), lr=0.01)  # every set real: Adam on −H
    adam = torch.optim.Adam(ref.parameters(), lr=0.01, fused=True)
    scheds = [torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5) for o in (opt, adam)]
    for x, y in data:
        torch_step(net, opt, x, y)
        torch_step(ref, adam, x, y)
        for s in scheds:
            s.step()
    assert opt.param_groups[0]["lr"] == 0.01 / 16
    for (n, a), b in zip(net.named_parameters(), ref.parameters()):
        assert torch.equal(a, b), n


def test_a_group_added_later_is_put_into_its_set_and_trained_with_the_others():
    a = nn.Parameter(torch.tensor([1.0, -1.0, 1.0]))
    opt = ocdl.optim.EMSA([{"params": [a], "control": ocdl.Binary()}], alpha=0.0)
    b = nn.Parameter(torch.tensor([0.3, -0.2, 0.0, 0.6]))
    opt.add_param_group({"params": [b], "control": ocdl.Ternary()})
    assert b.tolist() == [1.0, -1.0, 0.0, 1.0]  # TWN's threshold 0.7·mean|b| = 0.1925
    assert "mbar" in opt.state[b] and opt.rho == 0.5  # ρ: set when built (all binary then)
    a.grad = torch.tensor([1.0, 1.0, 1.0])  # α = 0: M̄ = M = −grad
    b.grad = torch.tensor([1.0, -1.0, 0.0, 0.0])
    opt.step()
    assert a.tolist() == [-1.0, -1.0, -1.0]  # ρ_k = 0.5·1 < |M̄| = 1 where sign(M̄) ≠ θ
    # ternary: ρ_k = 0.5·max(|M̄| − relu(M̄θ)) = 0.5, d = M̄ + 2ρ_kθ = [0, 0, 0, 1], τ = ρ_k
    assert b.tolist() == [0.0, 0.0, 0.0, 1.0]
