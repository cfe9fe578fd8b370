"""The closed-form Hamiltonian maximisers against brute force over each finite set."""
from __future__ import annotations

import itertools

import pytest
import torch

from ocdl.solvers.hamiltonian_argmax import batched, closed_forms

from conftest import brute_rows_with_a_nonzero

LEVELS5 = (-1.0, -0.5, 0.0, 0.5, 1.0)


def brute(mbar, theta, levels, penalty, lam):
    """argmax_l M̄ l − λ|l| − c (l − θ)² entry by entry; ties keep θ, else the lowest level."""
    out = torch.empty_like(theta)
    for i, (m, t) in enumerate(zip(mbar.flatten().tolist(), theta.flatten().tolist())):
        c = float(penalty)
        vals = {lv: m * lv - lam * abs(lv) - c * (lv - t) ** 2 for lv in levels}
        best = max(vals.values())
        winners = [lv for lv in levels if vals[lv] == best]
        out.view(-1)[i] = t if t in winners else winners[0]
    return out


def brute_rho_k(mbar, theta, rho):
    """ρ·max{|M̄_ij| : sign(M̄_ij) ≠ θ_ij} with sign(0) = +1, max ∅ = 0."""
    best = 0.0
    for m, t in zip(mbar.flatten().tolist(), theta.flatten().tolist()):
        s = 1.0 if m >= 0 else -1.0
        if s != t:
            best = max(best, abs(m))
    return rho * best


def rand_levels(shape, levels, g):
    lv = torch.tensor(levels, dtype=torch.float64)
    return lv[torch.randint(len(levels), shape, generator=g)]


@pytest.mark.parametrize("seed", range(5))
def test_binary_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    mbar = torch.randn(7, 9, generator=g, dtype=torch.float64)
    theta = rand_levels((7, 9), (-1.0, 1.0), g)
    rk = closed_forms.rho_k(mbar, theta, 0.5)
    assert float(rk) == pytest.approx(brute_rho_k(mbar, theta, 0.5), abs=0)
    new = closed_forms.binary_update(mbar, theta, rk)
    # binary form = argmax of M̄θ − (ρ_k/2)(θ − θ_ij)²
    assert torch.equal(new, brute(mbar, theta, (-1.0, 1.0), float(rk) / 2, 0.0))
    assert torch.equal(new, closed_forms.levels_argmax(mbar, theta, (-1.0, 1.0), rk / 2))


@pytest.mark.parametrize("seed", range(5))
def test_ternary_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    mbar = torch.randn(6, 11, generator=g, dtype=torch.float64)
    theta = rand_levels((6, 11), (-1.0, 0.0, 1.0), g)
    lam = float(torch.rand((), generator=g, dtype=torch.float64)) * 0.3
    rho = 0.1 + 0.4 * float(torch.rand((), generator=g, dtype=torch.float64))
    rk = closed_forms.rho_k(mbar, theta, rho)
    assert float(rk) == pytest.approx(brute_rho_k(mbar, theta, rho), abs=0)
    new = closed_forms.ternary_update(mbar, theta, rk, lam)
    assert torch.equal(new, brute(mbar, theta, (-1.0, 0.0, 1.0), float(rk), lam))


@pytest.mark.parametrize("seed", range(5))
def test_levels_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    mbar = torch.randn(5, 8, generator=g, dtype=torch.float64)
    theta = rand_levels((5, 8), LEVELS5, g)
    lam = 0.2 * float(torch.rand((), generator=g, dtype=torch.float64))
    rk = closed_forms.rho_k(mbar, theta, 0.3, LEVELS5)
    new = closed_forms.levels_argmax(mbar, theta, LEVELS5, rk, lam)
    assert torch.equal(new, brute(mbar, theta, LEVELS5, float(rk), lam))
    assert closed_forms.closed_form(_levels5(), mbar, theta, rk, lam).equal(new)


def _levels5():
    from ocdl.controls import Levels
    return Levels(values=LEVELS5)


def test_levels_rho_k_uses_the_level_m_pulls_towards():
    mbar = torch.tensor([0.3, -0.2, 0.5, -0.9, 0.0], dtype=torch.float64)
    theta = torch.tensor([1.0, -1.0, 0.5, 0.0, -1.0], dtype=torch.float64)
    # agree: 1 (M̄ ≥ 0, top), -1 (M̄ < 0, bottom); disagree: 0.5 (|0.5|), 0 (|−0.9|), −1 at M̄ = 0
    assert float(closed_forms.rho_k(mbar, theta, 2.0, LEVELS5)) == pytest.approx(1.8)


def test_ties_keep_theta_on_a_grid():
    """Integer-valued M̄, λ, c make many exact ties: the current θ must survive them."""
    vals = [-1.0, -0.5, 0.0, 0.5, 1.0]
    for levels in ((-1.0, 1.0), (-1.0, 0.0, 1.0), LEVELS5):
        for c, lam in itertools.product((0.0, 0.25, 0.5), (0.0, 0.25, 0.5)):
            m, t = zip(*itertools.product(vals, levels))
            mbar = torch.tensor(m, dtype=torch.float64)
            theta = torch.tensor(t, dtype=torch.float64)
            got = closed_forms.levels_argmax(mbar, theta, levels, c, lam)
            assert torch.equal(got, brute(mbar, theta, levels, c, lam)), (levels, c, lam)
    # all levels tie at M̄ = 0, c = λ = 0: nothing moves
    theta = torch.tensor(LEVELS5, dtype=torch.float64)
    assert torch.equal(closed_forms.levels_argmax(torch.zeros(5, dtype=torch.float64), theta,
                                              LEVELS5), theta)


def test_binary_tie_and_zero_keep_theta():
    theta = torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64)
    mbar = torch.tensor([0.5, -0.5, 0.0], dtype=torch.float64)  # |M̄| = ρ_k: tie; M̄ = 0
    assert torch.equal(closed_forms.binary_update(mbar, theta, 0.5), theta)
    assert torch.equal(closed_forms.binary_update(mbar[2:], theta[2:], 0.0), theta[2:])


def test_ternary_tie_follows_the_papers_rule():
    """At an exact tie the paper's ternary rule returns 0 (documented); the general argmax keeps
    θ. Here M̄ = ρ_k(1 − 2θ) + λ with θ = 1: levels 1 and 0 tie."""
    theta = torch.tensor([1.0], dtype=torch.float64)
    rk, lam = 0.25, 0.125
    mbar = torch.tensor([rk * (1 - 2) + lam], dtype=torch.float64)
    assert float(closed_forms.ternary_update(mbar, theta, rk, lam)) == 0.0
    assert float(closed_forms.levels_argmax(mbar, theta, (-1.0, 0.0, 1.0), rk, lam)) == 1.0


def test_running_average():
    mbar = torch.tensor([1.0, -2.0], dtype=torch.float64)
    m = torch.tensor([3.0, 4.0], dtype=torch.float64)
    closed_forms.running_average_(mbar, m, 0.75)
    assert torch.allclose(mbar, 0.75 * torch.tensor([1.0, -2.0], dtype=torch.float64) + 0.25 * m)


# ---------------------------------------------------------------------- fused forms
def _bank(levels, seed, shapes=((5, 7), (3, 4), (1, 9))):
    g = torch.Generator().manual_seed(seed)
    theta = [rand_levels(s, levels, g) for s in shapes]
    mbar = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    M = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    return theta, mbar, M


def _scratch(theta, chunk, k=1):
    if chunk:
        return [[torch.empty(chunk, dtype=torch.float64)] for _ in range(k)]
    return [[torch.empty_like(t) for t in theta] for _ in range(k)]


def _expected(levels, theta, mbar, M, w, rho, lam, l2, form):
    """Reference: running average, ρ_k, closed form, and the metrics, layer by layer."""
    out = []
    for t, mb, m, lm, q in zip(theta, mbar, M, lam, l2):
        mb2 = mb.clone().lerp_(m, w)
        rk = closed_forms.rho_k(mb2, t, rho)
        new = form(mb2, t, rk, lm)
        d = new - t
        dH = (m * d).sum() - lm * (new.abs().sum() - t.abs().sum()) - q * d.square().sum()
        out.append((mb2, rk, new, float((d != 0).sum()), float((new != 0).sum()), dH))
    return out


@pytest.mark.parametrize("chunk", [None, 4, 1 << 19])
@pytest.mark.parametrize("seed", range(3))
def test_fused_binary_matches_reference(chunk, seed):
    theta, mbar, M = _bank((-1.0, 1.0), seed)
    l2 = [0.0, 0.1, 0.0]
    exp = _expected((-1.0, 1.0), theta, mbar, M, 0.3, 0.4, [0.0] * 3, l2,
                    lambda mb, t, rk, lm: closed_forms.binary_update(mb, t, rk))
    (A,) = _scratch(theta, chunk)
    r = batched.binary_step_(theta, mbar, M, 0.3, torch.tensor(0.4, dtype=torch.float64), A,
                           torch.tensor(l2, dtype=torch.float64), chunk)
    for i, (mb2, rk, new, flips, _, _) in enumerate(exp):
        assert torch.allclose(mbar[i], mb2, rtol=0, atol=1e-15)
        assert float(r.rho_k[i]) == pytest.approx(float(rk))
        assert torch.equal(theta[i], new)
        assert float(r.flips[i]) == flips
    assert float(r.dH) == pytest.approx(sum(float(e[5]) for e in exp))


@pytest.mark.parametrize("ties_keep", [False, True])
@pytest.mark.parametrize("chunk", [None, 5, 1 << 19])
@pytest.mark.parametrize("seed", range(3))
def test_fused_ternary_matches_reference(chunk, seed, ties_keep):
    theta, mbar, M = _bank((-1.0, 0.0, 1.0), seed)
    lam, l2 = [0.05, 0.0, 0.2], [0.0, 0.3, 0.0]
    if ties_keep:
        form = lambda mb, t, rk, lm: closed_forms.levels_argmax(mb, t, (-1.0, 0.0, 1.0), rk, lm)
    else:
        form = closed_forms.ternary_update
    exp = _expected((-1.0, 0.0, 1.0), theta, mbar, M, 0.3, 0.25, lam, l2, form)
    A, B, C = _scratch(theta, chunk, 3)
    r = batched.ternary_step_(theta, mbar, M, 0.3, torch.tensor(0.25, dtype=torch.float64), A, B,
                            torch.tensor(lam, dtype=torch.float64),
                            torch.tensor(l2, dtype=torch.float64), chunk,
                            C if ties_keep else None)
    for i, (mb2, rk, new, flips, nnz, _) in enumerate(exp):
        assert torch.allclose(mbar[i], mb2, rtol=0, atol=1e-15)
        assert float(r.rho_k[i]) == pytest.approx(float(rk))
        assert torch.equal(theta[i], new)
        assert float(r.flips[i]) == pytest.approx(flips)
        assert float(r.nonzero[i]) == pytest.approx(nnz)
    assert float(r.dH) == pytest.approx(sum(float(e[5]) for e in exp))


@pytest.mark.parametrize("chunk", [None, 3, 13, 1 << 19])  # rows sliced: 1, 2 (and a rest), all
@pytest.mark.parametrize("seed", range(4))
def test_fused_ternary_keep_units_is_the_argmax_over_rows_with_a_nonzero(seed, chunk):
    """A dense (6 units × 5) and a conv (4 × 1 × 1 × 6) weight, λ large enough that the free
    argmax kills some units, and a 1-d control (bias-like: not kept), against enumeration; in
    the whole-tensor form and in slices of whole rows (a slice shorter than a row holds one)."""
    g = torch.Generator().manual_seed(seed)
    shapes = ((6, 5), (4, 1, 1, 6), (7,))
    theta = [rand_levels(s, (-1.0, 0.0, 1.0), g) for s in shapes]
    mbar = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    M = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    lam, l2 = [1.2, 1.0, 1.5], [0.0, 0.3, 0.0]
    free = _expected((-1.0, 0.0, 1.0), theta, mbar, M, 0.3, 0.25, lam, l2,
                     closed_forms.ternary_update)
    assert any(bool(e[2].flatten(1).eq(0).all(1).any()) for e in free[:2])  # units die freely
    old = [t.clone() for t in theta]
    A, B = _scratch(theta, chunk and max(chunk, 6), 2)  # the argmax sizes it to hold a row
    r = batched.ternary_step_(theta, mbar, M, 0.3, torch.tensor(0.25, dtype=torch.float64), A, B,
                            torch.tensor(lam, dtype=torch.float64),
                            torch.tensor(l2, dtype=torch.float64), chunk, None,
                            [True, True, False])
    for i in range(2):
        mb2, rk, _, _, _, _ = free[i]
        exp = brute_rows_with_a_nonzero(mb2, old[i], rk, lam[i])
        assert torch.equal(theta[i], exp)
        assert not theta[i].flatten(1).eq(0).all(1).any()
        assert float(r.nonzero[i]) == float((exp != 0).sum())
        d = exp - old[i]
        assert float(r.flips[i]) == float((d != 0).sum())
    assert torch.equal(theta[2], free[2][2])  # the 1-d control: the free argmax
    dH = sum(float((m * (t - o)).sum() - lm * (t.abs().sum() - o.abs().sum())
                   - q * (t - o).square().sum())
             for m, t, o, lm, q in zip(M, theta, old, lam, l2))
    assert float(r.dH) == pytest.approx(dH)


@pytest.mark.parametrize("chunk", [None, 2, 8])
def test_fused_ternary_keep_units_at_exact_thresholds(chunk):
    """ρ = 0, so d = M̄ and τ = λ: a row whose largest |d| equals τ is dead under the paper's
    rule (d > τ is strict) and revived at that entry; at |max| = |min| the positive one wins."""
    lam = 0.5
    mbar = torch.tensor([[lam, 0.5 * lam], [0.3 * lam, -lam], [2 * lam, -3 * lam],
                         [-0.5 * lam, 0.5 * lam]], dtype=torch.float64)
    theta = [torch.zeros(4, 2, dtype=torch.float64)]
    A, B = _scratch(theta, chunk, 2)
    r = batched.ternary_step_(theta, [mbar], [mbar], 0.0, torch.tensor(0.0, dtype=torch.float64),
                            A, B, torch.tensor([lam], dtype=torch.float64),
                            torch.zeros(1, dtype=torch.float64), chunk, None, [True])
    assert theta[0].tolist() == [[1.0, 0.0], [0.0, -1.0], [1.0, -1.0], [0.0, 1.0]]
    assert float(r.nonzero[0]) == 5 and float(r.flips[0]) == 5
    with pytest.raises(ValueError, match="ties keeping"):
        A, B, C = _scratch(theta, chunk, 3)
        batched.ternary_step_(theta, [mbar], [mbar], 0.0, torch.tensor(0.0, dtype=torch.float64),
                            A, B, torch.tensor([lam], dtype=torch.float64),
                            torch.zeros(1, dtype=torch.float64), chunk, C, [True])


@pytest.mark.parametrize("chunk", [None, 3])
def test_fused_ternary_keeps_theta_at_ties(chunk):
    """Basic MSA (ρ = 0, M̄ = M) with exact ties M = ±λ and M = 0 = λ: θ stays."""
    theta = [torch.tensor([1.0, 0.0, -1.0, 1.0, 0.0, -1.0, 1.0], dtype=torch.float64)]
    M = [torch.tensor([0.5, 0.5, -0.5, -0.5, -0.5, 0.5, 0.7], dtype=torch.float64)]
    lam = torch.tensor([0.5], dtype=torch.float64)
    A, B, C = _scratch(theta, chunk, 3)
    r = batched.ternary_step_(theta, M, M, 0.0, torch.tensor(0.0, dtype=torch.float64), A, B,
                            lam, torch.zeros(1, dtype=torch.float64), chunk, C)
    # ties between {0, sign M}: keep θ if it is one of them, else 0; 0.7 > λ: +1
    assert theta[0].tolist() == [1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0]
    assert float(r.nonzero[0]) == 3 and float(r.flips[0]) == 2
    theta = [torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)]
    M = [torch.zeros(3, dtype=torch.float64)]
    A, B, C = _scratch(theta, chunk, 3)
    batched.ternary_step_(theta, M, M, 0.0, torch.tensor(0.0, dtype=torch.float64), A, B,
                        torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
                        chunk, C)
    assert theta[0].tolist() == [1.0, 0.0, -1.0]  # M = 0 = λ: all levels tie


def test_fused_levels_matches_reference():
    from ocdl.controls import Levels
    theta, mbar, M = _bank(LEVELS5, 7)
    cs = [Levels(values=LEVELS5)] * 3
    exp = _expected(LEVELS5, theta, mbar, M, 0.5, 0.3, [0.1, 0.0, 0.0], [0.0, 0.0, 0.2],
                    lambda mb, t, rk, lm: closed_forms.levels_argmax(mb, t, LEVELS5, rk, lm))
    r = batched.levels_step_(cs, theta, mbar, M, 0.5, torch.tensor(0.3, dtype=torch.float64),
                           [0.1, 0.0, 0.0], [0.0, 0.0, 0.2])
    for i, (mb2, rk, new, flips, nnz, _) in enumerate(exp):
        assert torch.equal(theta[i], new)
        assert float(r.flips[i]) == flips and float(r.nonzero[i]) == nnz
    assert float(r.dH) == pytest.approx(sum(float(e[5]) for e in exp))
