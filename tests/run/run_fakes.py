"""Small stand-ins for the solver and data layers, so the loop is tested on its own.

``install(target)`` makes :mod:`ocdl.run.lifecycle` (the solver) and
:func:`ocdl.data.make_feeders` (a network spec's feeders) build these instead of the real ones
(``target`` is a pytest ``monkeypatch`` or ``None`` to patch for good, e.g. in a subprocess).

Solvers (by name): ``fake`` (a damped-gradient step that also draws from the global torch RNG,
so RNG restoration is exercised), ``fake-nan@K`` (NaN loss from iteration K on),
``fake-sigint@K`` (sends itself SIGINT during iteration K), ``fake-kbi@K`` (raises
KeyboardInterrupt inside iteration K, after touching θ), ``fake-real`` (handles real controls
only: SolverError on discrete sets).
"""
from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

import torch

from ocdl.errors import SolverError, did_you_mean
import ocdl.data
from ocdl.run import lifecycle

TINY_SPEC = """\
ocdl: 1
name: tiny
input: [8]
stages:
  - {name: fc1, op: dense, units: 16, bias: false, control: ternary}
  - {name: bn1, op: batchnorm, eps: 1.0e-4}
  - {name: relu1, op: relu}
  - {name: fc2, op: dense, units: 3, bias: false, control: ternary}
  - {name: bn2, op: batchnorm, eps: 1.0e-4}
cost:
  terminal: squared_hinge
  running:
    - {type: l1, weight: 1.0e-7}
data:
  name: mnist-subset
  batch_size: 20
"""


class FakeSolver:
    defaults = {"lr": 0.05, "gain": 200.0, "noise": 1e-3, "k": 0}
    kinds = ("real", "ternary", "binary", "levels", "box")

    def __init__(self, name: str, **hp: Any):
        unknown = set(hp) - set(self.defaults)
        if unknown:
            k = sorted(unknown)[0]
            raise SolverError(f"solver '{name}' has no setting '{k}'"
                              f"{did_you_mean(k, self.defaults)}")
        self.name = name
        self.hp = {**self.defaults, **hp}

    def init(self, system) -> dict[str, Any]:
        for c in system.controls:
            if c.cset.kind not in self.kinds:
                raise SolverError(f"solver '{self.name}' cannot optimise control {c.name} with a "
                                  f"{c.cset.describe()} set; choose another solver")
        return {"m": {c.name: torch.zeros_like(system.theta[c.name]) for c in system.controls},
                "count": 0}

    def _update(self, system, state, x, y):
        states = system.forward(x, train=True)
        co = system.costates(states, y, need_p=False)
        metrics = {"loss": co.loss, "J": co.J}
        with torch.no_grad():
            for c in system.controls:
                m = state["m"][c.name]
                m.mul_(0.9).add_(co.M[c.name]).add_(torch.randn_like(m), alpha=self.hp["noise"])
                th = system.theta[c.name]
                if c.cset.discrete:
                    new = c.cset.project(th + self.hp["gain"] * m)
                    metrics[f"flips/{c.stage}"] = (new != th).float().mean()
                    th.copy_(new)
                else:
                    th.add_(m, alpha=self.hp["lr"])
        state["count"] += 1
        return state, metrics

    def step(self, system, state, x, y):
        return self._update(system, state, x, y)

    def end_epoch(self, system, state, epoch, progress=None):
        state["epochs_done"] = epoch
        state["progress"] = progress
        return state


class NanSolver(FakeSolver):
    def step(self, system, state, x, y):
        state, m = self._update(system, state, x, y)
        if state["count"] >= self.hp["k"]:
            m["loss"] = m["loss"] * float("nan")
        return state, m


class EvalNanSolver(FakeSolver):
    """Training loss stays finite, but a BatchNorm scale becomes NaN at the end of epoch k."""

    def end_epoch(self, system, state, epoch, progress=None):
        if epoch == self.hp["k"]:
            with torch.no_grad():
                system.theta["bn1.weight"].fill_(float("nan"))
        return state


class SigintSolver(FakeSolver):
    def step(self, system, state, x, y):
        if state["count"] + 1 == self.hp["k"]:
            signal.raise_signal(signal.SIGINT)  # arrives mid-step; the step must still finish
        return self._update(system, state, x, y)


FIRED: set[str] = set()  # one-shot faults fire once per test (not again after resuming)


class KbiSolver(FakeSolver):
    def step(self, system, state, x, y):
        if state["count"] + 1 == self.hp["k"] and "kbi" not in FIRED:
            FIRED.add("kbi")
            with torch.no_grad():
                for t in system.theta.values():
                    t.mul_(-1)  # a half-done update
            raise KeyboardInterrupt
        return self._update(system, state, x, y)


class RealOnlySolver(FakeSolver):
    kinds = ("real",)


SOLVERS = {"fake": FakeSolver, "fake-nan": NanSolver, "fake-sigint": SigintSolver,
           "fake-kbi": KbiSolver, "fake-evalnan": EvalNanSolver, "fake-real": RealOnlySolver}


def make_solver(name: str, overrides: dict[str, Any]):
    base, _, k = str(name).partition("@")
    if base not in SOLVERS:
        raise SolverError(f"unknown solver '{name}'{did_you_mean(base, SOLVERS)}; solvers: "
                          f"{', '.join(SOLVERS)}")
    hp = dict(overrides)
    if k:
        hp.setdefault("k", int(k))
    return SOLVERS[base](name, **hp)


# ---------------------------------------------------------------------- data
class FakeFeeder:
    """Batches of a fixed synthetic split; the order of epoch e depends only on (seed, e)."""

    def __init__(self, x, y, batch_size, seed, shuffle, device):
        self.x, self.y = x.to(device), y.to(device)
        self.bs, self.seed, self.shuffle = batch_size, seed, shuffle

    def __len__(self):
        return -(-len(self.y) // self.bs)

    def epoch(self, epoch, start_batch=0):
        n = len(self.y)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1000003 + epoch)
            perm = torch.randperm(n, generator=g).to(self.x.device)
        else:
            perm = torch.arange(n, device=self.x.device)
        for b in range(start_batch, len(self)):
            idx = perm[b * self.bs:(b + 1) * self.bs]
            yield self.x[idx], self.y[idx]


@dataclass
class FakeFeeders:
    train: FakeFeeder
    valid: FakeFeeder | None
    test: FakeFeeder
    num_classes: int = 3


def make_feeders(options, input_shape, device):
    g = torch.Generator().manual_seed(1234)
    d = input_shape[0]
    w = torch.randn(d, 3, generator=g)
    n_train = options.limit or 200
    x = torch.rand(n_train + 100, d, generator=g)
    y = (x - 0.5).matmul(w).argmax(dim=1)
    tr = FakeFeeder(x[:n_train], y[:n_train], options.batch_size, options.seed, True, device)
    va = FakeFeeder(x[n_train:n_train + 50], y[n_train:n_train + 50], 25, 0, False, device)
    te = FakeFeeder(x[n_train + 50:], y[n_train + 50:], 25, 0, False, device)
    return FakeFeeders(tr, va, te)


def install(monkeypatch=None) -> None:
    FIRED.clear()
    if monkeypatch is None:
        lifecycle.make_solver = make_solver
        ocdl.data.make_feeders = make_feeders
    else:
        monkeypatch.setattr(lifecycle, "make_solver", make_solver)
        monkeypatch.setattr(ocdl.data, "make_feeders", make_feeders)
