"""The shared frame of the baselines that train discrete weights by a rule of their own
(BinaryConnect, TWN, any latent-weight solver, Bop).

Such a solver trains the weights of dense/conv stages whose set is one of its ``kinds`` and gives
the other real controls of the network (BatchNorm scale and shift, biases) an Adam step on ∇J
(:func:`ocdl.solvers.real_controls.real_adam_step`, lr ``real.lr``), as in the papers' code.
A step is: forward and reverse pass (M = −∇J), the real controls' Adam step, then the solver's
own :meth:`DiscreteWeightSolver._update` of the discrete weights from M; with ``cuda_graph:
step`` on a CUDA device all of it is one CUDA graph (:mod:`ocdl.solvers.cuda_graphs`).

Metrics: ``loss``, ``J`` (before the step), then those of ``_update``, with :class:`FlipMetrics`'
``flips/<stage>``, ``nonzero/<stage>``, ``flips``, ``nonzero``.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch

from ..errors import SolverError
from ..system import Costates, System
from .base import Solver
from .cuda_graphs import Execution
from .hamiltonian_argmax import metric_keys
from .first_order import adam_init
from .real_controls import real_adam_step
from .workspace import Workspace

WEIGHT_OPS = ("dense", "conv2d")


def refuse_real_weights(system: System, solver: str, discrete_kind: str) -> None:
    """A latent-weight or Bop solver trains the weights of dense/conv stages as ``discrete_kind``
    and gives only the other real controls (BatchNorm scale/shift, biases) Adam steps; a real
    dense/conv weight is a :class:`SolverError`, not a silent Adam baseline."""
    ops = {st.name: st.op.name for st in system.all_stages()}
    for c in system.controls:
        if c.param == "weight" and ops.get(c.stage) in WEIGHT_OPS and not c.cset.discrete:
            raise SolverError(f"solver '{solver}' cannot optimise control {c.name} with a "
                              f"{c.cset.describe()} set: it trains {discrete_kind} weights (real "
                              "controls other than dense/conv weights take Adam); make the "
                              f"weight {discrete_kind} or use adam/sgd")


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
    """Base of the baselines that train the weights of the finite sets ``kinds`` and give the
    other real controls Adam on ∇J: the per-system set-up (``self._names``, ``self._real``,
    ``self._metrics``, ``self._work``, ``self.execution``), the checks at ``init``, and the
    step, whose update of the discrete weights a subclass writes in :meth:`_update`. Settings
    read here: ``real.lr`` and the Adam ``betas`` / ``eps`` of the block ``adam_block``, and
    ``execution.cuda_graph`` (false or step)."""

    kinds: ClassVar[tuple[str, ...]] = ()
    adam_block: ClassVar[str] = "real"
    choices = {"cuda_graph": (False, "step")}

    def finite_kinds(self) -> tuple[str, ...]:
        """The set kinds whose weights this solver trains."""
        return self.kinds

    def _prepare(self, system: System) -> None:
        if getattr(self, "_for", None) is system:
            return
        kinds = self.finite_kinds()
        self._names = [c.name for c in system.controls if c.cset.kind in kinds]
        self._real = [c.name for c in system.controls if not c.cset.discrete]
        self._metrics = FlipMetrics(system, self._names) if self._names else None
        self._work = Workspace()
        self.execution = Execution(self.settings["execution"], self.all_choices["cuda_graph"],
                                   self.setting_name("execution.cuda_graph"))
        self._setup(system)
        self._for = system

    def _setup(self, system: System) -> None:
        """Per-system extras of a subclass (default: none)."""

    def _start(self, system: System) -> None:
        """The checks of ``init``: supported sets, no real weights, then the set-up."""
        self.check_system(system)
        refuse_real_weights(system, self.name, "/".join(self.finite_kinds()))
        self._prepare(system)

    def real_state(self, system: System) -> dict[str, Any]:
        """The Adam moments of the real controls (the state's ``adam_real``)."""
        return adam_init({n: system.theta[n] for n in self._real})

    def scratch(self, names: list[str], system: System):
        """``scratch(tag)``: a buffer per control of ``names`` shaped like its θ."""
        return lambda tag: [self._work.get(n, tag, system.theta[n]) for n in names]

    def step(self, system: System, state: dict[str, Any], x: torch.Tensor, y: torch.Tensor
             ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """One iteration: :meth:`_before_forward`, forward and costates (M = −∇J), the Adam step
        of the real controls, then :meth:`_update` of the discrete weights from M, run as
        ``execution`` says (a new batch shape or learning-rate scale recaptures a graph)."""
        self._prepare(system)
        metrics = self.execution.run(system, state, x, y,
                                     lambda xb, yb, _: self._body(system, state, xb, yb),
                                     lambda: (state.get("lr_scale", 1.0),))
        state["iteration"] += 1
        return state, metrics

    def _body(self, system: System, state: dict[str, Any], x: torch.Tensor, y: torch.Tensor
              ) -> dict[str, torch.Tensor]:
        if self._names:
            self._before_forward(system, state)
        c = system.costates(system.forward(x), y, need_p=False)
        adam = self.settings[self.adam_block]
        real_adam_step(system, self._real, c.M, state["adam_real"],
                       lr=self.lr(state, "real.lr"), betas=tuple(adam["betas"]), eps=adam["eps"])
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
