"""Small systems and data for the solver tests (float64 where numbers are checked)."""
from __future__ import annotations

import itertools

import pytest
import torch

from ocdl.modelspec import loads_spec


def mlp_spec(kind: str, *, n_in: int = 8, hidden: int = 16, n_out: int = 4, l1: float = 0.0,
             affine: bool = True, bias: bool = False, act: str = "relu", bn: bool = True,
             name: str | None = None):
    """dense(kind) → [batchnorm] → act → dense(kind) → [batchnorm], squared hinge."""
    control = kind if kind.startswith("{") else f"{kind}"
    bn1 = f"\n  - {{name: bn1, op: batchnorm, eps: 1.0e-4, affine: {str(affine).lower()}}}" \
        if bn else ""
    bn2 = f"\n  - {{name: bn2, op: batchnorm, eps: 1.0e-4, affine: {str(affine).lower()}}}" \
        if bn else ""
    cost = (f"\n  running:\n    - {{type: l1, weight: {l1!r}, apply_to: [fc1, fc2]}}" if l1 else "")
    text = f"""
ocdl: 1
name: {name or 'test-' + kind.strip('{}').replace(' ', '').replace(':', '-').replace(',', '-')}
input: [{n_in}]
stages:
  - {{name: fc1, op: dense, units: {hidden}, bias: {str(bias).lower()}, control: {control}}}{bn1}
  - {{name: act1, op: {act}}}
  - {{name: fc2, op: dense, units: {n_out}, bias: {str(bias).lower()}, control: {control}}}{bn2}
cost:
  terminal: squared_hinge{cost}
"""
    return loads_spec(text)


def teacher_data(spec, n: int, seed: int = 0, dtype=torch.float64):
    """Inputs N(0, 1) and labels from a teacher network of the same architecture (seed 123)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, spec.input[0], generator=g, dtype=dtype)
    teacher = spec.compile(dtype=dtype, seed=123)
    y = teacher.predict(x).argmax(1)
    return x, y


def blobs(n: int, dim: int = 20, classes: int = 4, noise: float = 1.0, seed: int = 0):
    """A Gaussian mixture: class centres N(0, I) (fixed), samples centre + noise·N(0, I)
    drawn with ``seed`` (use different seeds for training and test data)."""
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(1234))
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    return centres[y] + noise * torch.randn(n, dim, generator=g), y


@pytest.fixture(autouse=True)
def one_thread():
    """These networks are tiny: one intra-op thread is faster, and on a busy 2-core machine it
    avoids OpenMP waits for a descheduled worker (which made steps 100× slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def brute_rows_with_a_nonzero(mbar, theta, rk, lam):
    """argmax of Σ_i M̄_i l_i − λ|l_i| − ρ_k (l_i − θ_i)² over the ternary rows l (per output
    unit, the row flattened) with at least one non-zero entry: every 3^n row enumerated."""
    out = torch.empty_like(theta)
    rows_m, rows_t, rows_o = mbar.flatten(1), theta.flatten(1), out.view(theta.shape[0], -1)
    c, lm = float(rk), float(lam)
    for u in range(theta.shape[0]):
        m, t = rows_m[u].tolist(), rows_t[u].tolist()
        cands = [row for row in itertools.product((-1.0, 0.0, 1.0), repeat=len(m)) if any(row)]
        best = max(cands, key=lambda row: sum(mi * li - lm * abs(li) - c * (li - ti) ** 2
                                             for mi, li, ti in zip(m, row, t)))
        rows_o[u] = torch.tensor(best, dtype=theta.dtype)
    return out


def conv_net(kind: str):
    """conv(kind) → BatchNorm → ReLU → max-pool → conv(kind) → BN → ReLU → dense(kind) → BN, squared
    hinge, with an l1 cost on the ternary weights (λ = 1e-6: 50–75 % non-zero, 10–30 % of the
    weights flip per step): the CIFAR net's stages, small."""
    from ocdl import Model
    m = Model(f"conv-{kind}", input=(3, 8, 8))
    m.conv2d(8, 3, padding=1, bias=False, control=kind); m.batchnorm(eps=1e-4); m.relu()
    m.maxpool(2)
    m.conv2d(8, 3, padding=1, bias=False, control=kind); m.batchnorm(eps=1e-4); m.relu()
    m.flatten(); m.dense(5, bias=False, control=kind); m.batchnorm(eps=1e-4)
    m.terminal("squared_hinge")
    if kind == "ternary":
        m.l1(1e-6)
    return m
