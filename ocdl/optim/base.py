"""The frame of ocdl's ``torch.optim.Optimizer`` subclasses: control sets on param groups,
M = −∇J from ``.grad``, Adam for the real parameters, and state that survives a reload.

A param group names the admissible set Θ of its parameters under ``control`` (an
:class:`ocdl.ControlSet`: ``ocdl.Real()`` by default, ``ocdl.Box``, ``ocdl.Binary()``,
``ocdl.Ternary()``, ``ocdl.Levels``) and the weight λ of the running cost λ‖θ‖₁ under ``l1``
(accounted for by the optimizer, so the loss must not contain it). After ``loss.backward()``,
``step()`` reads M_t = Σ_s ∇_θ H_t = −∇_{θ_t} J as the negated ``.grad`` (DESIGN.md §1) and
updates every parameter in place:

* **real and box parameters** (BatchNorm's γ and β, biases) take one Adam step on −H, the rule of
  E-MSA (given ``model=``, E-MSA's inner steps follow, :mod:`ocdl.optim.augmented`) and of the
  baselines' real controls (:func:`ocdl.solvers.real_controls.adam_ascent_`:
  torch's fused Adam ascending M − λ sign θ, decoupled weight decay, then Π_Θ onto a box), with
  the group's ``lr``, ``betas``, ``eps``, ``weight_decay`` — so ``torch.optim.lr_scheduler``
  schedules them like any optimizer's groups; their moments are ``exp_avg``, ``exp_avg_sq`` and
  ``step`` in ``self.state[p]``;
* **finite-set parameters** take the subclass's rule (:meth:`ControlOptimizer._discrete_step`).

**Into the set at construction.** A finite-set parameter that is not in its set when the
optimizer is built is put into it (``put_in``): ``"quantize"`` (the default) θ ← Q(θ) with the
set's quantizer (:mod:`ocdl.solvers.quantizers`: binary sign(θ); ternary TWN's
sign(θ)·[|θ| > 0.7·mean|θ|], which is scale-free, so any real initialisation gives a ternary one;
other level sets the nearest level), ``"uniform"`` a draw uniform over the set (the paper's
initialisation, seeded with ``seed``), ``"refuse"`` a :class:`ocdl.ControlSetError`. A parameter
already in its set is left as it is.

**Gradients.** Finite-set parameters are updated together (one ρ_k per layer, one λ scale): either
all of them have a ``.grad`` at a step or none (then they are left); real ones without a
``.grad`` are skipped, as torch's optimizers do. Gradient accumulation, ``torch.amp.GradScaler``
(which unscales ``.grad`` and skips ``step()`` when it finds inf or NaN) and closures work as with
any optimizer.

**State.** ``state_dict()`` holds the per-parameter state (M̄, moments, latent weights) as torch's
does, every group's control set as its spec (``{"set": "ternary"}``, so ``torch.load(...,
weights_only=True)`` reads it) and the optimizer's own numbers (α, ρ, the λ scale, the step
count) under ``"ocdl"``; ``load_state_dict`` checks that the sets and the optimizer match.
``metrics`` holds the last step's 0-d tensors (``flips``, ``nonzero``, ``rho_k/max``, …), read
without a host sync.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch

from ..controls import Binary, ControlSet, Real, Ternary, control_from_dict
from ..errors import ControlSetError, SolverError, short
from ..solvers.first_order import adam_init, ascent_direction
from ..solvers.quantizers import QuantizerSettings
from ..solvers.real_controls import adam_ascent_
from ..solvers.settings import Part, Require
from ..solvers.workspace import Workspace
from .view import ParamControls

PUT_IN = ("quantize", "uniform", "refuse")

REAL_DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
"""The real parameters' Adam (torch.optim.Adam's defaults; the paper's lr 1e-3 for BatchNorm)."""


def put_in_quantizer(cset: ControlSet) -> str:
    """The quantizer that puts a real tensor into ``cset``: sign, ternary-threshold or nearest."""
    if isinstance(cset, Binary):
        return "sign"
    if isinstance(cset, Ternary):
        return "ternary-threshold"
    return "nearest"


class ControlOptimizer(torch.optim.Optimizer):
    """Base of ocdl's optimizers (see the module docstring). A subclass sets ``supports`` (the
    set kinds it trains) and implements :meth:`_discrete_step`; it may keep numbers of its own in
    :attr:`ocdl_state` (saved by :meth:`state_dict`)."""

    supports: tuple[str, ...] = ("real", "box")
    step_keywords: ClassVar[tuple[str, ...]] = ()
    """Keyword arguments :meth:`step` takes (passed to :meth:`_discrete_step`)."""
    aliases: ClassVar[dict[str, str]] = {}
    """Part setting path (``average.alpha``) → this optimizer's keyword (``alpha``), for errors."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any], *,
                 put_in: str = "quantize", seed: int = 0):
        if put_in not in PUT_IN:
            raise SolverError(f"{self.title()}: put_in must be one of {', '.join(PUT_IN)}, got "
                              f"{short(put_in)}")
        self._put_in, self._seed = put_in, seed
        self._gen = torch.Generator().manual_seed(seed)  # put_in="uniform"'s draws
        self._work = Workspace()
        self._view: ParamControls | None = None
        self.ocdl_state: dict[str, Any] = {"iteration": 0}
        self.metrics: dict[str, torch.Tensor] = {}
        super().__init__(params, {"control": Real(), "l1": 0.0, **defaults})
        self._view = self._build_view()
        self._check_devices()

    # ------------------------------------------------------------------ groups
    @classmethod
    def title(cls) -> str:
        return f"ocdl.optim.{cls.__name__}"

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's ``add_param_group``, then the group's set checked and its parameters put into
        it (see the module docstring)."""
        super().add_param_group(param_group)
        i = len(self.param_groups) - 1
        group = self.param_groups[i]
        cset, lam = group["control"], group["l1"]
        where = f"{self.title()} param group {i}"
        if not isinstance(cset, ControlSet):
            raise SolverError(f"{where}: 'control' must be an ocdl control set such as "
                              f"ocdl.Ternary() or ocdl.Real(), got {short(cset)}")
        if cset.kind not in self.supports:
            raise ControlSetError(f"{where}: {self.title()} cannot train a {cset.describe()} set "
                                  f"(it handles: {', '.join(self.supports)}); choose another "
                                  "optimizer or set")
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam >= 0 \
                or not math.isfinite(lam):
            raise SolverError(f"{where}: 'l1' (the weight λ of λ‖θ‖₁) must be a number ≥ 0, got "
                              f"{short(lam)}")
        names = self._names_of(group, i)
        for n, p in zip(names, group["params"]):
            if p.is_sparse or not p.is_floating_point():
                raise SolverError(f"{where}: parameter {n} must be a dense floating-point tensor")
        if cset.discrete:
            self._admit(group, names)
        if self._view is not None:  # a group added after construction
            self._view = self._build_view()
            self._check_devices()
            self._groups_changed()

    def _names_of(self, group: Mapping[str, Any], i: int) -> list[str]:
        names = group.get("param_names")
        return list(names) if names else [f"{i}.{k}" for k in range(len(group["params"]))]

    def _build_view(self) -> ParamControls:
        names, params, csets, l1 = [], [], [], []
        for i, g in enumerate(self.param_groups):
            for n, p in zip(self._names_of(g, i), g["params"]):
                names.append(n)
                params.append(p)
                csets.append(g["control"])
                l1.append(g["l1"])
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise SolverError(f"{self.title()}: parameter names {dup} occur twice; give each "
                              "group's param_names unique names")
        self._group_names = [self._names_of(g, i) for i, g in enumerate(self.param_groups)]
        return ParamControls(names, params, csets, l1)

    def _check_devices(self) -> None:
        view = self._view
        disc = [view.theta[n] for n in view.names(True)]
        kinds = {(p.device, p.dtype) for p in disc}
        if len(kinds) > 1:
            raise SolverError(f"{self.title()}: the finite-set parameters must share one device "
                              f"and dtype (they are updated together), got "
                              f"{sorted(str(k) for k in kinds)}; move the model with .to() first")

    def _groups_changed(self) -> None:
        """A group was added after construction: subclasses rebuild what depends on the view."""

    def _admit(self, group: dict[str, Any], names: list[str]) -> None:
        """Put the finite-set parameters of a new group into their set (``put_in``)."""
        cset = group["control"]
        with torch.no_grad():
            for n, p in zip(names, group["params"]):
                if cset.contains(p.detach()):
                    continue
                if self._put_in == "refuse":
                    raise ControlSetError(
                        f"{self.title()}: parameter {n} is not in its {cset.describe()} set; "
                        f"initialise it in the set, or pass put_in='quantize' (θ ← Q(θ)) or "
                        f"'uniform' (a uniform draw over the set)")
                if self._put_in == "uniform":
                    p.copy_(cset.init(tuple(p.shape), self._gen, p.dtype))
                else:
                    self._quantize_into([n], [p], cset, put_in_quantizer(cset), {})

    def _quantize_into(self, names: list[str], params: list[torch.Tensor], cset: ControlSet,
                       quantizer: str, settings: Mapping[str, Any],
                       latent: list[torch.Tensor] | None = None) -> None:
        """θ ← Q(W) for the quantizer ``quantizer`` (W = ``latent``, or θ itself)."""
        q = QuantizerSettings.build({**QuantizerSettings.DEFAULTS, **settings,
                                     "name": quantizer})
        view = ParamControls(names, params, [cset] * len(names), [0.0] * len(names))
        q.setup(view, names)
        theta = [p.detach() for p in params]
        src = latent if latent is not None else [t.clone() for t in theta]
        q.quantize_(theta, src, lambda tag: [torch.empty_like(t) for t in theta])

    def require(self, block: str, values: Mapping[str, Any], part: type[Part]) -> None:
        """Run the range checks of the solver part ``part`` on ``values`` (an error names this
        optimizer's keyword, :attr:`aliases`)."""
        part.check(values, Require(self.title(), block, values,
                                   lambda path: self.aliases.get(path, path)))

    # ------------------------------------------------------------------ gradients
    def _grads(self, discrete: bool) -> list[tuple[str, torch.Tensor, dict[str, Any]]]:
        """(name, parameter, group) of the finite-set (``discrete``) or real parameters that
        have a ``.grad``; finite-set ones all or none."""
        out, missing = [], []
        for g, names in zip(self.param_groups, self._group_names):
            if g["control"].discrete != discrete:
                continue
            for n, p in zip(names, g["params"]):
                if p.grad is None:
                    missing.append(n)
                    continue
                if p.grad.is_sparse:
                    raise SolverError(f"{self.title()}: parameter {n} has a sparse gradient; "
                                      "ocdl's optimizers take dense gradients")
                out.append((n, p, g))
        if discrete and out and missing:
            raise SolverError(f"{self.title()}: finite-set parameters {missing[:4]} have no "
                              f"gradient while others do; they are updated together, so use "
                              "each one in the loss, or leave it out of the optimizer")
        return out

    def _minus_grad(self, items: list[tuple[str, torch.Tensor, dict[str, Any]]]
                    ) -> dict[str, torch.Tensor]:
        """M = −∇J = −.grad per parameter, in buffers kept from step to step."""
        M = {}
        for n, p, _ in items:
            buf = self._work.get(n, "M", p.grad)
            torch.neg(p.grad, out=buf)
            M[n] = buf
        return M

    # ------------------------------------------------------------------ steps
    @torch.no_grad()
    def step(self, closure: Any = None, **kw: Any) -> Any:
        """One step from the current ``.grad`` (``closure``: re-evaluates the loss first, with
        grad enabled, and its value is returned)."""
        unknown = sorted(set(kw) - set(self.step_keywords))
        if unknown:
            raise SolverError(f"{self.title()}.step() got unexpected keyword arguments {unknown}"
                              f" (it takes: closure{''.join(', ' + k for k in self.step_keywords)})")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        real = self._grads(False)
        disc = self._grads(True)
        M = self._minus_grad(real + disc)
        metrics: dict[str, torch.Tensor] = {}
        if real:
            metrics.update(self._real_step(real, M) or {})
        if disc:
            metrics.update(self._discrete_step(disc, M, **kw))
        self.metrics = metrics
        self.ocdl_state["iteration"] += 1
        return loss

    def _real_step(self, items: list[tuple[str, torch.Tensor, dict[str, Any]]],
                   M: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """One Adam step on −H per real group: θ ← Π_Θ(Adam_ascent(θ, M − λ sign θ)); returns
        the step's metrics, if any."""
        self._adam_ascent(items, ascent_direction(self._view, M, [n for n, _, _ in items]))
        return None

    def _adam_ascent(self, items: list[tuple[str, torch.Tensor, dict[str, Any]]],
                     g_all: dict[str, torch.Tensor]) -> None:
        """One Adam step per real group ascending ``g_all`` (name → direction) with the group's
        ``lr``, ``betas``, ``eps`` and decoupled ``weight_decay``, then Π_Θ; the moments are the
        parameters' ``exp_avg``, ``exp_avg_sq`` and ``step``."""
        by_group: dict[int, list[tuple[str, torch.Tensor]]] = {}
        groups: dict[int, dict[str, Any]] = {}
        for n, p, g in items:
            by_group.setdefault(id(g), []).append((n, p))
            groups[id(g)] = g
        for key, members in by_group.items():
            g = groups[key]
            names = [n for n, _ in members]
            for n, p in members:
                st = self.state[p]
                if "exp_avg" not in st:
                    a = adam_init({n: p})
                    st.update(exp_avg=a["m"][n], exp_avg_sq=a["v"][n], step=a["step"][n])
            moments = {"m": {n: self.state[p]["exp_avg"] for n, p in members},
                       "v": {n: self.state[p]["exp_avg_sq"] for n, p in members},
                       "step": {n: self.state[p]["step"] for n, p in members}}
            adam_ascent_(self._view, names, {n: g_all[n] for n in names}, moments,
                         lr=float(g["lr"]),
                         betas=tuple(g["betas"]), eps=float(g["eps"]),
                         weight_decay=float(g["weight_decay"]))

    def _discrete_step(self, items: list[tuple[str, torch.Tensor, dict[str, Any]]],
                       M: dict[str, torch.Tensor], **kw: Any) -> dict[str, torch.Tensor]:
        """The finite-set parameters' update from M; returns the step's metrics."""
        raise NotImplementedError

    def end_epoch(self, progress: float | None = None) -> None:
        """The per-epoch schedules of the optimizer's own numbers (E-MSA's 1 − α); a no-op for
        optimizers without any. ``progress`` π is the fraction of the run done, needed by the
        schedules to the run's end (``alpha_end``, ``nonzero_end``)."""

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        for g in sd["param_groups"]:
            g["control"] = g["control"].to_dict()
        sd["ocdl"] = {"optimizer": type(self).__name__, **self.ocdl_state}
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        sd = dict(state_dict)
        extra = sd.pop("ocdl", None)
        if not isinstance(extra, Mapping) or extra.get("optimizer") != type(self).__name__:
            what = extra.get("optimizer") if isinstance(extra, Mapping) else "another optimizer"
            raise SolverError(f"{self.title()}.load_state_dict: this state was saved by "
                              f"{what}, not {self.title()}; load it into the optimizer that "
                              "saved it")
        saved = sd.get("param_groups", [])
        if len(saved) != len(self.param_groups):
            raise SolverError(f"{self.title()}.load_state_dict: the state has {len(saved)} param "
                              f"groups, this optimizer {len(self.param_groups)}; build the "
                              "optimizer with the same groups as the one that saved it")
        groups = []
        for i, (g, mine) in enumerate(zip(saved, self.param_groups)):
            g = dict(g)
            c = g.get("control")
            cset = control_from_dict(c, f"param_groups[{i}].control") if isinstance(c, Mapping) \
                else c
            if cset != mine["control"]:
                raise SolverError(f"{self.title()}.load_state_dict: param group {i} was saved "
                                  f"with a {short(c)} set, this optimizer's is "
                                  f"{mine['control'].describe()}; use the same sets")
            g["control"] = cset
            groups.append(g)
        sd["param_groups"] = groups
        super().load_state_dict(sd)
        for p, st in self.state.items():  # Adam's fused kernel wants its step counts beside p
            if isinstance(st.get("step"), torch.Tensor):
                st["step"] = st["step"].to(p.device)
        own = {k: v for k, v in extra.items() if k != "optimizer"}
        for k, v in own.items():
            cur = self.ocdl_state.get(k)
            if isinstance(v, torch.Tensor):
                dev = cur.device if isinstance(cur, torch.Tensor) else self._view.device
                v = v.detach().to(device=dev).clone()
            self.ocdl_state[k] = v
        self._loaded()

    def _loaded(self) -> None:
        """After :meth:`load_state_dict`: subclasses re-bind what reads the state."""
