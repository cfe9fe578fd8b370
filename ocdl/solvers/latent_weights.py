"""Latent real weights and a quantizer: BinaryConnect, TWN and their kin on the same System.

The solver keeps real "latent" weights W in its state and writes θ = Q(W) into
``system.theta`` (Q a quantizer, :mod:`ocdl.solvers.quantizers`), so evaluation and checkpoints
see the discrete network. The gradient reaches W by the straight-through estimator
∂J/∂W := ∂J/∂θ = −M, plus λ sign θ for the model's l1 cost where |θ| can vary (sets with 0):
one step of a standard optimiser on W per batch (block ``straight_through``: Adam, or SGD with
momentum μ and L2 weight decay, b ← μ·b + ∂J/∂W + wd·W, W ← W − lr·b as torch's ``SGD``), each
layer's rate optionally times BinaryConnect's ``W_LR_scale`` = 1/H_g (``lr_scale: glorot``,
H_g = sqrt(1.5/(fan_in + fan_out)), fan_in = k_h·k_w·C_in for a conv); then W is clipped to
[−c, c] (block ``latent``: ``clip`` c, null: no clip) and θ ← Q(W).

W starts as ``init``: ``uniform`` U(−1, 1) (BinaryConnect's code, H = 1), ``kaiming_uniform``
U(±1/sqrt(fan_in)) (torch's Linear/Conv default, TWN's) or ``theta`` (θ itself), drawn in float64
from a generator seeded with ``seed``. A quantizer that drops a per-layer scale (TWN's α) needs a
batchnorm after every stage it quantizes, which absorbs the scale: other networks are refused.
Real controls take Adam on ∇J (:mod:`ocdl.solvers.discrete_weights`).

:class:`LatentWeightSolver` is this composition; BinaryConnect (sign, clip 1, glorot rates),
TWN (ternary threshold) and ``latent`` (any quantizer, by preset) are its settings.
Metrics: ``loss``, ``J`` (before the step), ``flips/<stage>``, ``nonzero/<stage>``, ``flips``,
``nonzero``, and the quantizer's extras (``scale/<stage>`` for TWN).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from ..controls import ControlSet, Real
from ..errors import SolverError
from ..system import Costates, System
from .discrete_weights import DiscreteWeightSolver
from .first_order import adam_init, adam_step, sgd_init, sgd_step
from .quantizers import QUANTIZERS, QuantizerSettings, Sign
from .real_controls import AdamSettings
from .schedules import LrSchedule
from .cuda_graphs import Execution
from .settings import Part, Require, betas_ok, positive

TERNARY_VALUES = {-1.0, 0.0, 1.0}

ALIASES = {"quantizer": "quantizer.name", "stochastic": "quantizer.stochastic",
           "delta_factor": "quantizer.delta_factor", "latent_init": "latent.init",
           "clip": "latent.clip", "optimizer": "straight_through.optimizer",
           "lr": "straight_through.lr", "lr_scale": "straight_through.lr_scale",
           "betas": "straight_through.betas", "eps": "straight_through.eps",
           "weight_decay": "straight_through.weight_decay",
           "momentum": "straight_through.momentum", "nesterov": "straight_through.nesterov",
           "lr_real": "real.lr", "lr_decay": "lr_schedule.decay", "lr_end": "lr_schedule.end",
           "seed": "seed", "cuda_graph": "execution.cuda_graph"}
"""The flat names of the latent-weight solvers' settings; each solver takes those it has
(:func:`aliases_of`)."""


def aliases_of(*names: str) -> dict[str, str]:
    """The entries ``names`` of :data:`ALIASES`: a latent-weight solver's alias table."""
    return {n: ALIASES[n] for n in names}


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


def straight_through_(M: torch.Tensor, theta: torch.Tensor, cset: ControlSet, lam: float
                      ) -> torch.Tensor:
    """The straight-through ascent direction of the full Hamiltonian for latent weights,
    M − λ sign θ (M = −∇_θ J, written in place into M's storage) where the set holds 0 and the l1
    weight λ is positive, else M itself (|θ| cannot vary, so λ‖θ‖₁ is constant)."""
    if lam and 0.0 in cset.values:
        sign = theta if set(cset.values) <= TERNARY_VALUES else torch.sign(theta)
        return M.sub_(sign, alpha=lam)
    return M


class LatentWeights(Part):
    """Block ``latent``: ``init`` (uniform | kaiming_uniform | theta) and ``clip`` (c > 0, or
    null)."""

    DEFAULTS = {"init": "uniform", "clip": None}
    DOCS = {"init": "the latent weights' start: uniform U(±1), kaiming_uniform, or theta (W = θ)",
            "clip": "clip W to [−clip, clip] after each step (null: no clip)"}
    CHOICES = {"init": ("uniform", "kaiming_uniform", "theta")}

    @classmethod
    def check(cls, s: Mapping[str, Any], require: Require) -> None:
        c = s["clip"]
        require(c is None or (isinstance(c, (int, float)) and not isinstance(c, bool) and c > 0),
                "clip", "must be a number > 0 (W clipped to [-clip, clip]) or null (no clip)")

    @staticmethod
    def draw(system: System, names: list[str], init: str, seed: int
             ) -> dict[str, torch.Tensor]:
        """The initial W of each control ``names`` (see the module docstring)."""
        gen = torch.Generator().manual_seed(seed)
        latent = {}
        for n in names:
            th = system.theta[n].detach()
            if init == "uniform":
                w = torch.rand(th.shape, generator=gen, dtype=torch.float64) * 2 - 1
            elif init == "kaiming_uniform":
                w = Real("kaiming_uniform").init(th.shape, gen, torch.float64)
            else:
                w = th.clone()
            latent[n] = w.to(device=th.device, dtype=th.dtype)
        return latent


class StraightThrough(Part):
    """Block ``straight_through``: ``optimizer`` (adam | sgd), ``lr``, ``lr_scale`` (glorot |
    none), Adam's ``betas`` and ``eps`` (which the real controls' Adam shares), ``weight_decay``,
    SGD's ``momentum`` and ``nesterov``."""

    DEFAULTS = {"optimizer": "adam", "lr": 1e-3, "lr_scale": "none", "betas": [0.9, 0.999],
                "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.9, "nesterov": False}
    DOCS = {"optimizer": "the latent weights' optimiser: adam or sgd",
            "lr": "learning rate of the latent weights",
            "lr_scale": "per-layer rate scale: glorot (BinaryConnect's 1/H) or none",
            "betas": AdamSettings.DOCS["betas"], "eps": AdamSettings.DOCS["eps"],
            "weight_decay": "L2 weight decay of the latent weights",
            "momentum": "SGD's momentum (optimizer: sgd)",
            "nesterov": "SGD's Nesterov momentum (optimizer: sgd)"}
    CHOICES = {"optimizer": ("adam", "sgd"), "lr_scale": ("glorot", "none")}

    @classmethod
    def check(cls, s: Mapping[str, Any], require: Require) -> None:
        positive(s, require, "lr", "eps")
        require(s["weight_decay"] >= 0, "weight_decay", "must be ≥ 0")
        require(0 <= s["momentum"] < 1, "momentum", "must be in [0, 1)")
        require(not s["nesterov"] or (s["optimizer"] == "sgd" and s["momentum"] > 0),
                "nesterov", f"needs {require.name('optimizer')}: sgd with "
                f"{require.name('momentum')} > 0")
        betas_ok(s, require)


def check_bn_follows(system: System, names: list[str], solver: str) -> None:
    """Every stage owning a quantized control must feed only batchnorm stages (which absorb the
    quantizer's scale α)."""
    for n in names:
        t = system.control[n].t
        readers = [s for s in system.stages if t + 1 in s.inputs]
        if not readers or any(r.op.name != "batchnorm" for r in readers):
            what = ", ".join(f"'{r.name}' ({r.op.name})" for r in readers) or "nothing"
            kind = system.control[n].cset.kind
            raise SolverError(f"solver '{solver}' needs a batchnorm after {kind} stage "
                              f"'{system.stages[t].name}' to absorb TWN's scale α (the System's "
                              f"{kind} set is {{-1,0,1}}), but its output is read by {what}; "
                              "add a batchnorm stage or use emsa-ternary")


class LatentWeightSolver(DiscreteWeightSolver):
    """Latent weights W, θ = Q(W), a straight-through optimiser step on W, an optional clip."""

    supports = ("binary", "ternary", "levels", "real", "box")
    parts = {"latent": LatentWeights, "quantizer": QuantizerSettings,
             "straight_through": StraightThrough, "real": AdamSettings,
             "lr_schedule": LrSchedule, "execution": Execution}
    adam_block = "straight_through"
    top = {"seed": 0}

    def validate(self) -> None:
        super().validate()
        self.require(not (self.get("execution.cuda_graph") and self.get("quantizer.stochastic")),
                     self.setting_name("execution.cuda_graph"),
                     "cannot capture stochastic binarisation (its draws come from a generator "
                     "whose state the run saves after every step); set stochastic: false or "
                     "cuda_graph: false")

    def finite_kinds(self) -> tuple[str, ...]:
        return QUANTIZERS[self.get("quantizer.name")].kinds

    def accepted_kinds(self) -> tuple[str, ...]:
        kinds = self.finite_kinds() + ("real", "box")
        return tuple(k for k in super().accepted_kinds() if k in kinds)

    def _setup(self, system: System) -> None:
        glorot = self.get("straight_through.lr_scale") == "glorot"
        groups: dict[float, list[str]] = {}
        for n in self._names:
            scale = 1.0 / glorot_h(system.control[n].shape) if glorot else 1.0
            groups.setdefault(scale, []).append(n)
        self._groups = groups
        self._gen = torch.Generator(device=system.device).manual_seed(self.hp["seed"] + 1)
        self.quantizer = QuantizerSettings.build(self.settings["quantizer"])
        self.quantizer.setup(system, self._names)

    def init(self, system: System) -> dict[str, Any]:
        self._start(system)
        if self.quantizer.needs_batchnorm:
            check_bn_follows(system, self._names, self.name)
        latent = LatentWeights.draw(system, self._names, self.get("latent.init"),
                                    self.hp["seed"])
        if self._names:
            with torch.no_grad():
                self.quantizer.quantize_([system.theta[n].detach() for n in self._names],
                                         [latent[n] for n in self._names],
                                         self.scratch(self._names, system))
        opt = ({"sgd": sgd_init(latent)} if self.get("straight_through.optimizer") == "sgd"
               else {"adam": adam_init(latent)})
        return {"latent": latent, **opt, "adam_real": self.real_state(system), "iteration": 0}

    def _before_forward(self, system: System, state: dict[str, Any]) -> None:
        """Stochastic sign: draw θ = +1 with probability clip((W+1)/2, 0, 1)."""
        if not self.get("quantizer.stochastic"):
            return
        if "rng" in state:  # resume the binarisation draws of a checkpointed run
            self._gen.set_state(state["rng"])
        with torch.no_grad():
            Sign.sample_([system.theta[n].detach() for n in self._names],
                         [state["latent"][n] for n in self._names], self._gen)
        state["rng"] = self._gen.get_state()

    def _update(self, system: System, state: dict[str, Any], c: Costates
                ) -> dict[str, torch.Tensor]:
        s, names = self.settings["straight_through"], self._names
        with torch.no_grad():
            g = {n: straight_through_(c.M[n], system.theta[n].detach(), system.control[n].cset,
                                      system.control[n].l1) for n in names}
        for scale, group in self._groups.items():  # straight-through: ascend M
            latent = {n: state["latent"][n] for n in group}
            grads = {n: g[n] for n in group}
            lr = self.lr(state, "straight_through.lr") * scale
            if s["optimizer"] == "sgd":
                sgd_step(latent, grads, state["sgd"], lr=lr, momentum=s["momentum"],
                         nesterov=s["nesterov"], weight_decay=s["weight_decay"], maximize=True)
            else:
                adam_step(latent, grads, state["adam"], lr=lr, betas=tuple(s["betas"]),
                          eps=s["eps"], weight_decay=s["weight_decay"], maximize=True)
        with torch.no_grad():
            theta = [system.theta[n].detach() for n in names]
            latent_list = [state["latent"][n] for n in names]
            clip = self.get("latent.clip")
            if clip is not None:
                torch._foreach_clamp_min_(latent_list, -float(clip))
                torch._foreach_clamp_max_(latent_list, float(clip))
            flips, nnz, extras = self.quantizer.requantize_(
                theta, latent_list, self.scratch(names, system), self._metrics.numel)
        metrics = self._metrics(flips, nnz)
        for what, per_layer in extras.items():
            for i, n in enumerate(names):
                metrics[f"{what}/{self._metrics.keys[n]}"] = per_layer[i]
        return metrics
