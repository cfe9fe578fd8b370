"""Shared pieces of the latent-weight baselines (BinaryConnect, TWN) and of Bop.

These solvers keep real "latent" weights W (or a momentum m) in their state and write a discrete
θ into ``system.theta``; the gradient that reaches the latent weight is the straight-through
estimate ∂J/∂W := ∂J/∂θ = −M. Real and box controls of the same network take an Adam step on ∇J
(torch's fused kernel), as in the papers' code.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from ..system import Costates, System
from .banks import metric_keys
from .base import Solver
from .fused import Workspace
from .graphs import GraphedUpdate, graphed_step
from .optim import adam_init, adam_step, ascent_direction, project_


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight: dense (out, in); conv (out, in, k_h, k_w)."""
    if len(shape) < 2:
        n = shape[0] if shape else 1
        return n, n
    rf = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * rf, shape[0] * rf


def glorot_h(shape: tuple[int, ...]) -> float:
    """BinaryConnect's H = sqrt(1.5 / (fan_in + fan_out)) (Courbariaux et al. 2015)."""
    fi, fo = fans(shape)
    return math.sqrt(1.5 / (fi + fo))


def sign_into_(theta: list[torch.Tensor], latent: list[torch.Tensor]) -> None:
    """θ ← sign(W) with sign(0) = +1, in place (two foreach passes after a comparison)."""
    for th, w in zip(theta, latent):
        torch.ge(w, 0, out=th)
    torch._foreach_mul_(theta, 2.0)
    torch._foreach_sub_(theta, 1.0)


WEIGHT_OPS = ("dense", "conv2d")


def refuse_real_weights(system: System, solver: str, discrete_kind: str) -> None:
    """A latent-weight or Bop solver trains the weights of dense/conv stages as ``discrete_kind``
    and gives only the other real controls (BatchNorm scale/shift, biases) Adam steps; a real
    dense/conv weight is a :class:`SolverError`, not a silent Adam baseline."""
    from ..errors import SolverError
    ops = {st.name: st.op.name for st in system.all_stages()}
    for c in system.controls:
        if c.param == "weight" and ops.get(c.stage) in WEIGHT_OPS and not c.cset.discrete:
            raise SolverError(f"solver '{solver}' cannot optimise control {c.name} with a "
                              f"{c.cset.describe()} set: it trains {discrete_kind} weights (real "
                              "controls other than dense/conv weights take Adam); make the "
                              f"weight {discrete_kind} or use adam/sgd")


class RealPart:
    """The real and box controls of a network with discrete weights: Adam on ∇J."""

    def __init__(self, system: System, names: list[str]):
        self.names = names

    def init_state(self, system: System) -> dict[str, Any]:
        return adam_init({n: system.theta[n] for n in self.names})

    def step(self, system: System, M: dict[str, torch.Tensor], state: dict[str, Any], *,
             lr: float, betas: tuple[float, float], eps: float) -> None:
        if not self.names:
            return
        g = ascent_direction(system, M, self.names)
        adam_step({n: system.theta[n] for n in self.names}, g, state, lr=lr, betas=betas,
                  eps=eps, maximize=True)
        project_(system, self.names)


class FlipMetrics:
    """``flips/<stage>``, ``nonzero/<stage>``, ``flips``, ``nonzero`` from per-layer counts (sizes
    cached on the device, so a step makes no host transfer)."""

    def __init__(self, system: System, names: list[str]):
        self.names = names
        self.keys = metric_keys(system, names)
        self.numel = torch.tensor([system.control[n].numel for n in names],
                                  device=system.device, dtype=system.dtype)
        self.total = float(sum(system.control[n].numel for n in names))

    def __call__(self, flips: torch.Tensor, nonzero: torch.Tensor | None
                 ) -> dict[str, torch.Tensor]:
        nz = self.numel if nonzero is None else nonzero
        out: dict[str, torch.Tensor] = {}
        fr, nf = flips / self.numel, nz / self.numel
        for i, n in enumerate(self.names):
            out[f"flips/{self.keys[n]}"] = fr[i]
            out[f"nonzero/{self.keys[n]}"] = nf[i]
        out["flips"] = flips.sum() / self.total
        out["nonzero"] = nz.sum() / self.total
        return out



class DiscreteWeightSolver(Solver):
    """Base of the baselines that train the weights of one finite set (``kind``: binary or
    ternary) and give the other real controls (BatchNorm, biases) Adam on ∇J: the per-system
    set-up (``self._names``, ``self._real``, ``self._metrics``, ``self._work``), the checks at
    ``init``, and the step (forward, costates, the real controls' step), whose update of the
    discrete weights a subclass writes in :meth:`_update`."""

    kind: ClassVar[str] = ""
    GRAPH_CHOICES: ClassVar[tuple[Any, ...]] = (False, "step")
    """``cuda_graph``: false, or ``step`` (the whole step replayed as one CUDA graph on CUDA)."""

    def _prepare(self, system: System) -> None:
        if getattr(self, "_for", None) is system:
            return
        self._names, self._real, self._metrics = discrete_and_real(system, self.kind)
        self._work = Workspace()
        self._graph = GraphedUpdate("cuda_graph to false (--set cuda_graph=false)")
        self._setup(system)
        self._for = system

    def _setup(self, system: System) -> None:
        """Per-system extras of a subclass (default: none)."""

    def _start(self, system: System) -> None:
        """The checks of ``init``: supported sets, no real weights, then the set-up."""
        self.check_system(system)
        refuse_real_weights(system, self.name, self.kind)
        self._prepare(system)

    def step(self, system: System, state: dict[str, Any], x: torch.Tensor, y: torch.Tensor
             ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """One iteration: :meth:`_before_forward`, forward and costates (M = −∇J), the Adam step
        of the real controls, then :meth:`_update` of the discrete weights from M. Metrics:
        ``loss`` and ``J`` before the step, then those of ``_update``. With ``cuda_graph: step``
        on a CUDA device all of it is captured once as a CUDA graph and replayed
        (:func:`ocdl.solvers.graphs.graphed_step`; a new batch shape or learning-rate scale
        recaptures); on the CPU the setting changes nothing."""
        self._prepare(system)
        if self.hp.get("cuda_graph") == "step" and system.device.type == "cuda":
            metrics = graphed_step(self._graph, system, state, x, y,
                                   lambda xb, yb: self._body(system, state, xb, yb),
                                   (state.get("lr_scale", 1.0),))
        else:
            metrics = self._body(system, state, x, y)
        state["iteration"] += 1
        return state, metrics

    def _body(self, system: System, state: dict[str, Any], x: torch.Tensor, y: torch.Tensor
              ) -> dict[str, torch.Tensor]:
        if self._names:
            self._before_forward(system, state)
        c = system.costates(system.forward(x), y, need_p=False)
        self._real.step(system, c.M, state["adam_real"], lr=self.lr(state, "lr_real"),
                        betas=tuple(self.hp["betas"]), eps=self.hp["eps"])
        metrics: dict[str, torch.Tensor] = {"loss": c.loss, "J": c.J}
        if self._names:
            metrics.update(self._update(system, state, c))
        return metrics

    def _before_forward(self, system: System, state: dict[str, Any]) -> None:
        """Set θ for this iteration's forward pass (default: keep it)."""

    def _update(self, system: System, state: dict[str, Any], c: Costates
                ) -> dict[str, torch.Tensor]:
        """The step of the discrete weights ``self._names`` from the costates; returns its
        metrics (flips, non-zero fractions, …)."""
        raise NotImplementedError


def discrete_and_real(system: System, kind: str
                      ) -> tuple[list[str], RealPart, "FlipMetrics | None"]:
    """The names of the ``kind`` controls (binary/ternary), the Adam-trained real part, and the
    flip/non-zero metrics of the discrete part (None when it is empty)."""
    names = [c.name for c in system.controls if c.cset.kind == kind]
    real = RealPart(system, [c.name for c in system.controls if not c.cset.discrete])
    return names, real, (FlipMetrics(system, names) if names else None)

