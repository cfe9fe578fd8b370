"""A small network both ways: a compiled ocdl System and the same nn.Module with its θ."""
from __future__ import annotations

import torch
from torch import nn

from ocdl.costs import squared_hinge
from ocdl.modelspec import loads_spec

N_IN, HIDDEN, N_OUT = 12, 24, 5


def spec(kind: str, l1: float = 0.0):
    """dense(kind) → batchnorm → relu → dense(kind) → batchnorm, squared hinge, λ‖θ‖₁."""
    cost = f"\n  running:\n    - {{type: l1, weight: {l1!r}, apply_to: [fc1, fc2]}}" if l1 else ""
    return loads_spec(f"""
ocdl: 1
name: optim-{kind}
input: [{N_IN}]
stages:
  - {{name: fc1, op: dense, units: {HIDDEN}, bias: false, control: {kind}}}
  - {{name: bn1, op: batchnorm, eps: 1.0e-4}}
  - {{name: relu1, op: relu}}
  - {{name: fc2, op: dense, units: {N_OUT}, bias: false, control: {kind}}}
  - {{name: bn2, op: batchnorm, eps: 1.0e-4}}
cost:
  terminal: squared_hinge{cost}
""")


class Net(nn.Sequential):
    """The same network as an nn.Module, parameters named as the System's controls."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(N_IN, HIDDEN, bias=False)
        self.bn1 = nn.BatchNorm1d(HIDDEN, eps=1e-4)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(HIDDEN, N_OUT, bias=False)
        self.bn2 = nn.BatchNorm1d(N_OUT, eps=1e-4)


def net_of(system) -> Net:
    """A :class:`Net` holding the System's θ (copies)."""
    net = Net().to(system.dtype)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(system.theta[name])
    return net


def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The System's J: the batch mean of the squared hinge."""
    return squared_hinge(out, y).mean()


def batches(k: int, size: int = 64, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, N_IN, generator=g, dtype=dtype),
             torch.randint(0, N_OUT, (size,), generator=g)) for _ in range(k)]


def torch_step(net: nn.Module, opt, x, y, **kw) -> torch.Tensor:
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(net(x), y)
    loss.backward()
    opt.step(**kw)
    return loss.detach()


def assert_same(net: nn.Module, system) -> None:
    """Every parameter and batchnorm running statistic of ``net`` equals the System's."""
    for name, p in net.named_parameters():
        assert torch.equal(p.detach(), system.theta[name].detach()), name
    for st in system.stages:
        for b, v in st.buffers.items():
            assert torch.equal(getattr(net, st.name).get_buffer(b), v), f"{st.name}.{b}"
