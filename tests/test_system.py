"""Costates p_t and M_t against independent computations.

* p_T = −(1/S)∇Φ against hand-written gradients of each terminal cost;
* p_t = ∇_x H_t(x_t, p_{t+1}, θ_t) and M_t = Σ_s ∇_θ H_t against per-stage Hamiltonians;
* M = −∇J against central finite differences of J in float64, for every op and control set;
* a two-layer tanh network against the hand-derived adjoint recursion;
* the paper's MNIST network against a plain torch.nn model's gradients.
"""
import pytest
import torch
import torch.nn.functional as F

import ocdl
from ocdl import Binary, Box, Levels, Model, Real, Ternary
from ocdl.models import model_path

D = torch.float64
SETS = [Real(), Box(-0.7, 0.9), Binary(), Ternary(), Levels((-1.0, -0.5, 0.0, 0.5, 1.0))]


def fd_check(system, x, y, n_dirs=2, eps=1e-6, tol=1e-6):
    """−<M, v> equals the central difference of J(θ + εv) along random directions v."""
    st = system.forward(x)
    c = system.costates(st, y)
    g = torch.Generator().manual_seed(7)
    for _ in range(n_dirs):
        v = {k: torch.randn(t.shape, generator=g, dtype=D) for k, t in system.theta.items()}
        with torch.no_grad():
            def J_at(s):
                th = {k: system.theta[k] + s * v[k] for k in v}
                return system.objective(system.forward(x, theta=th, update_stats=False, replay=st), y)[0]
            fd = (J_at(eps) - J_at(-eps)) / (2 * eps)
        pred = -sum((c.M[k] * v[k]).sum() for k in v)
        assert abs(float(fd - pred)) <= tol * max(1.0, abs(float(fd))), (float(fd), float(pred))
    return st, c


def check_costate_recursion(system, st, c, y):
    """p_T from Φ by hand is checked elsewhere; here p_t = Σ_readers ∇_x H and M = ∇_θ H."""
    T = system.T
    contrib = [torch.zeros_like(xi) for xi in st.x]
    for t in range(T):
        xs = [xi.detach().requires_grad_(True) for xi in system.stage_inputs(st, t)]
        th = {k: v.detach().clone().requires_grad_(True) for k, v in system.stage_theta(t).items()}
        H = system.hamiltonian(t, xs, c.p[t + 1].detach(), th, ctx=st.ctx[t], include_l1=False)
        grads = torch.autograd.grad(H, xs + list(th.values()), allow_unused=True)
        for i, gi in zip(system.stages[t].inputs, grads[:len(xs)]):
            if gi is not None:
                contrib[i] = contrib[i] + gi
        for k, gk in zip(th, grads[len(xs):]):
            assert torch.allclose(gk, c.M[k], atol=1e-10, rtol=1e-9), k
    for t in range(1, T):
        assert torch.allclose(contrib[t], c.p[t], atol=1e-10, rtol=1e-9), t


def one_op_models():
    """Small networks exercising every op."""
    ms = []
    m = Model("dense", input=(5,)); m.dense(4); m.tanh(); m.dense(3, bias=False); m.sigmoid()
    m.dense(3); m.terminal("cross_entropy"); ms.append(m)
    m = Model("conv", input=(2, 7, 6)); m.conv2d(3, 3, padding=1); m.batchnorm(); m.relu()
    m.maxpool(2); m.conv2d(4, [2, 3], stride=[1, 2]); m.avgpool(kernel=[2, 1]); m.hardtanh(-0.5, 2)
    m.flatten(); m.dense(3); m.terminal("squared_hinge"); ms.append(m)
    m = Model("bn1d", input=(6,)); m.dense(5); m.batchnorm(eps=1e-4, momentum=0.2); m.relu()
    m.dropout(0.3); m.dense(4); m.batchnorm(affine=False); m.terminal("mse"); ms.append(m)
    m = Model("merge", input=(6,)); a = m.dense(6, name="a"); m.tanh(); b = m.dense(6)
    s = m.add(a, b); c = m.concat(s, a); m.relu(inputs=c); m.dense(3)
    m.terminal("cross_entropy"); ms.append(m)
    m = Model("resnet", input=(3, 5, 5)); m.conv2d(4, 3, padding=1)
    with m.residual(h=0.5):
        m.conv2d(4, 3, padding=1); m.batchnorm(); m.tanh(); m.conv2d(4, 1)
    with m.residual():
        m.conv2d(4, 3, padding=1); m.relu()
    m.flatten(); m.dense(3); m.terminal("cross_entropy"); ms.append(m)
    return ms


@pytest.mark.parametrize("model", one_op_models(), ids=lambda m: m.name)
@pytest.mark.parametrize("batch", [1, 7])
def test_costates_match_finite_differences_and_hamiltonians(model, batch):
    if model.name in ("conv", "bn1d", "resnet") and batch == 1:
        pytest.skip("batch statistics need more than one sample")
    system = model.compile(dtype=D, seed=batch)
    x = torch.randn(batch, *system.input_shape, dtype=D)
    y = torch.randint(3 if model.name != "bn1d" else 4, (batch,))
    st, c = fd_check(system, x, y)
    check_costate_recursion(system, st, c, y)


@pytest.mark.parametrize("cset", SETS, ids=lambda s: s.describe())
def test_every_control_set(cset):
    m = Model("sets", input=(4,))
    m.dense(6, control=cset); m.batchnorm(); m.tanh(); m.dense(3, bias=False, control=cset)
    m.terminal("squared_hinge").l2(0.01)
    system = m.compile(dtype=D, seed=3)
    assert system.check_sets() == []
    x, y = torch.randn(9, 4, dtype=D), torch.randint(3, (9,))
    st, c = fd_check(system, x, y)
    check_costate_recursion(system, st, c, y)


@pytest.mark.parametrize("terminal", ["cross_entropy", "squared_hinge", "mse"])
def test_terminal_costate_by_hand(terminal):
    m = Model("t", input=(5,)); m.dense(4); m.terminal(terminal)
    system = m.compile(dtype=D)
    S = 6
    x, y = torch.randn(S, 5, dtype=D), torch.randint(4, (S,))
    st = system.forward(x)
    c = system.costates(st, y)
    out = st.output.detach()
    onehot = F.one_hot(y, 4).to(D)
    if terminal == "cross_entropy":
        grad_phi = torch.softmax(out, 1) - onehot
    elif terminal == "squared_hinge":
        yy = 2 * onehot - 1
        grad_phi = (-2 * yy * torch.relu(1 - yy * out)) / 4
    else:
        grad_phi = 2 * (out - onehot) / 4
    assert torch.allclose(c.p[system.T], -grad_phi / S, atol=1e-12)


def test_two_layer_tanh_adjoint_by_hand():
    m = Model("two", input=(3,)); m.dense(4, name="l1"); m.tanh(); m.dense(2, name="l2")
    m.terminal("mse")
    system = m.compile(dtype=D)
    W1, b1 = system.theta["l1.weight"].detach(), system.theta["l1.bias"].detach()
    W2 = system.theta["l2.weight"].detach()
    S = 5
    x = torch.randn(S, 3, dtype=D)
    target = torch.randn(S, 2, dtype=D)
    st = system.forward(x)
    c = system.costates(st, target)
    z1 = x @ W1.T + b1
    h = torch.tanh(z1)
    out = h @ W2.T + system.theta["l2.bias"].detach()
    p3 = -(2 * (out - target) / 2) / S           # p_T = −(1/S)∇Φ, Φ = mean_c (out − y)²
    p2 = p3 @ W2                                  # p_2 = W2ᵀ p_3
    p1 = (1 - h ** 2) * p2                        # p_1 = tanh'(z1) ⊙ p_2
    assert torch.allclose(c.p[3], p3) and torch.allclose(c.p[2], p2)
    assert torch.allclose(c.p[1], p1)
    assert torch.allclose(c.M["l2.weight"], p3.T @ h)  # M = Σ_s p_{s,t+1} x_{s,t}ᵀ
    assert torch.allclose(c.M["l1.weight"], p1.T @ x)
    assert torch.allclose(c.M["l1.bias"], p1.sum(0))


def test_mnist_network_matches_plain_torch():
    spec = ocdl.load_spec(model_path("mnist-fc-ternary"))
    small = Model("small", input=(784,))
    for i in range(3):
        small.dense(64, bias=False, control=Ternary()); small.batchnorm(eps=1e-4); small.relu()
    small.dense(10, bias=False, control=Ternary()); small.batchnorm(eps=1e-4)
    small.terminal("squared_hinge")
    for system in (small.compile(dtype=D, seed=1), spec.compile(seed=1)):
        layers = []
        for st in system.stages:
            if st.op.name == "dense":
                lin = torch.nn.Linear(*reversed(st.controls and system.control[
                    st.controls["weight"]].shape), bias=False)
                lin.weight.data.copy_(system.theta[st.controls["weight"]].detach())
                layers.append(lin)
            elif st.op.name == "batchnorm":
                layers.append(torch.nn.BatchNorm1d(st.out_shape[0], eps=st.params["eps"]))
            else:
                layers.append(torch.nn.ReLU())
        net = torch.nn.Sequential(*layers).to(system.dtype)
        x = torch.rand(32, 784, dtype=system.dtype)
        y = torch.randint(10, (32,))
        out = net(x)
        yy = 2 * F.one_hot(y, 10).to(out.dtype) - 1
        loss = torch.relu(1 - yy * out).square().mean()
        loss.backward()
        c = system.costates(system.forward(x), y)
        tol = 1e-10 if system.dtype == D else 1e-5
        assert abs(float(c.loss) - float(loss.detach())) <= tol * 10
        dense = [s for s in system.stages if s.op.name == "dense"]
        lins = [l for l in net if isinstance(l, torch.nn.Linear)]
        for st, lin in zip(dense, lins):
            g = c.M[st.controls["weight"]]
            scale = lin.weight.grad.abs().max()
            assert torch.allclose(-g, lin.weight.grad, atol=tol * float(scale) * 10, rtol=1e-4)
        # running statistics were updated once by the forward pass, like torch's
        assert torch.allclose(system.stages[1].buffers["running_mean"], net[1].running_mean,
                              atol=1e-6)


def test_augmented_hamiltonian_at_current_controls():
    """At θ = θ^k both feasibility errors vanish and ∇_θ of the augmented H equals M_t."""
    m = Model("aug", input=(4,)); m.dense(5); m.batchnorm(); m.tanh(); m.dense(3)
    m.terminal("cross_entropy")
    system = m.compile(dtype=D)
    x, y = torch.randn(8, 4, dtype=D), torch.randint(3, (8,))
    st = system.forward(x)
    c = system.costates(st, y)
    for t in (0, 1, 3):
        th = {k: v.detach().clone().requires_grad_(True) for k, v in system.stage_theta(t).items()}
        val, parts = system.augmented_hamiltonian(t, system.stage_inputs(st, t), c.p[t + 1], th,
                                                  rho=2.0, x_next=st.x[t + 1],
                                                  p_t=[c.p[t]], ctx=st.ctx[t])
        assert float(parts["state_error"].detach()) < 1e-20
        assert float(parts["costate_error"].detach()) < 1e-20
        grads = torch.autograd.grad(val, list(th.values()))
        for k, gk in zip(th, grads):
            assert torch.allclose(gk, c.M[k], atol=1e-10)
        # away from θ^k the penalties are positive and reduce the value
        moved = {k: v.detach() + 0.3 for k, v in th.items()}
        val2, parts2 = system.augmented_hamiltonian(t, system.stage_inputs(st, t), c.p[t + 1],
                                                    moved, rho=2.0, ctx=st.ctx[t])
        assert float(parts2["state_error"].detach()) > 0
        assert float(parts2["costate_error"].detach()) > 0
        H2 = system.hamiltonian(t, system.stage_inputs(st, t), c.p[t + 1], moved, ctx=st.ctx[t])
        assert torch.allclose(val2, H2 - parts2["state_error"] - parts2["costate_error"])


def test_dropout_masks_are_replayed_by_the_hamiltonian():
    m = Model("drop", input=(6,)); m.dense(6); m.dropout(0.5); m.dense(2)
    system = m.compile(dtype=D)
    x, y = torch.randn(10, 6, dtype=D), torch.randint(2, (10,))
    st = system.forward(x)
    c = system.costates(st, y)
    check_costate_recursion(system, st, c, y)


def test_l1_is_left_out_of_M_but_in_the_full_objective():
    m = Model("l1", input=(3,)); m.dense(2, control=Ternary()); m.terminal("mse").l1(0.5)
    system = m.compile(dtype=D)
    x, y = torch.randn(4, 3, dtype=D), torch.randint(2, (4,))
    st = system.forward(x)
    J_smooth, _ = system.objective(st, y)
    J_full, _ = system.objective(st, y, include_l1=True)
    assert torch.allclose(J_full - J_smooth, 0.5 * system.theta["dense1.weight"].abs().sum())
    assert system.control["dense1.weight"].l1 == 0.5 and system.control["dense1.bias"].l1 == 0


def test_counts_projection_and_state_dict():
    spec = ocdl.load_spec(model_path("mnist-fc-ternary"))
    system = spec.compile(seed=0)
    assert system.T == 11 and system.num_params() == 10_027_028
    frac = system.nonzero_fraction()
    assert 0.64 < frac < 0.69  # uniform over {−1, 0, 1}
    with torch.no_grad():
        system.theta["fc1.weight"].mul_(0.4)
    assert system.check_sets() == ["fc1.weight"]
    system.project_()
    assert system.check_sets() == []
    sd = system.state_dict()
    other = spec.compile(seed=5)
    other.load_state_dict(sd)
    assert all(torch.equal(other.theta[k], system.theta[k]) for k in sd["theta"])
    tiny = Model("x", input=(3,))
    tiny.dense(2)
    with pytest.raises(ocdl.OcdlError, match="do not match"):
        tiny.compile().load_state_dict(sd)


def test_seeded_init_is_reproducible_and_device_independent():
    spec = ocdl.load_spec(model_path("mnist-fc-ternary"))
    a, b = spec.compile(seed=3), spec.compile(seed=3, dtype=D)
    assert all(torch.equal(a.theta[k].double(), b.theta[k]) for k in a.theta)


def test_wrong_input_shape_is_a_clear_error():
    m = Model("s", input=(4,)); m.dense(2)
    with pytest.raises(ocdl.ShapeError, match=r"sample shape \[5\].*expects \[4\]"):
        m.compile().forward(torch.randn(3, 5))


def test_augmented_hamiltonian_gradient_matches_finite_differences():
    """Away from θ^k, ∇_θ of the augmented H (double backward through ∇_x H_t) equals central
    differences of its value; ``create_graph=False`` gives the same value."""
    m = Model("augfd", input=(4,)); m.dense(5); m.batchnorm(); m.tanh(); m.dense(3)
    m.terminal("cross_entropy")
    system = m.compile(dtype=D)
    x, y = torch.randn(8, 4, dtype=D), torch.randint(3, (8,))
    st = system.forward(x)
    c = system.costates(st, y)
    g = torch.Generator().manual_seed(3)
    for t in (0, 1, 3):
        base = {k: v.detach() + 0.2 * torch.randn(v.shape, generator=g, dtype=D)
                for k, v in system.stage_theta(t).items()}

        def value(th, create_graph=True):
            v, _ = system.augmented_hamiltonian(t, system.stage_inputs(st, t), c.p[t + 1], th,
                                                rho=1.5, x_next=st.x[t + 1], p_t=[c.p[t]],
                                                ctx=st.ctx[t], create_graph=create_graph)
            return v

        th = {k: v.clone().requires_grad_(True) for k, v in base.items()}
        v = value(th)
        grads = dict(zip(th, torch.autograd.grad(v, list(th.values()))))
        assert float(value(base, create_graph=False).detach()) == pytest.approx(float(v.detach()),
                                                                            rel=1e-12)
        eps = 1e-6
        for k, b in base.items():
            for idx in [(0,) * b.ndim, tuple(s - 1 for s in b.shape)]:
                plus, minus = dict(base), dict(base)
                plus[k] = b.clone(); plus[k][idx] += eps
                minus[k] = b.clone(); minus[k][idx] -= eps
                fd = (float(value(plus).detach()) - float(value(minus).detach())) / (2 * eps)
                assert fd == pytest.approx(float(grads[k][idx]), rel=1e-6, abs=1e-8), (t, k, idx)


def test_costates_of_states_before_any_control():
    """A network that starts with control-free stages (flatten, pool of the input): its first
    states do not depend on θ, yet p_t = −∂J/∂x_t is defined for them; the reverse pass gives
    it (against autograd on J as a function of the input)."""
    m = Model("lead", input=(1, 4, 4))
    m.maxpool(2); m.flatten(); m.dense(3)
    m.terminal("cross_entropy")
    system = m.compile(dtype=D)
    x = torch.randn(5, 1, 4, 4, dtype=D)
    y = torch.tensor([0, 1, 2, 0, 1])
    c = system.costates(system.forward(x), y)
    assert c.p[0] is None
    x1 = F.max_pool2d(x, 2).requires_grad_(True)
    J = F.cross_entropy(F.linear(x1.flatten(1), system.theta["dense1.weight"],
                                 system.theta["dense1.bias"]), y)
    g, = torch.autograd.grad(J, x1)
    assert torch.allclose(c.p[1], -g, rtol=0, atol=1e-14)
    assert torch.allclose(c.p[2], -g.flatten(1), rtol=0, atol=1e-14)
