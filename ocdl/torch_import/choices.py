"""Control sets Θ for imported layers, and the start value of each control in its set.

``controls`` maps a layer's qualified name (``"fc_out"``, ``"features.0"``) or its type
(``"Linear"``, ``"Conv2d"``) to an admissible set: a :class:`ocdl.controls.ControlSet`, a set's
spec form (``"ternary"``, ``{set: levels, values: [...]}``) or a mapping control → set
(``{"weight": "ternary", "bias": "real"}``). A name wins over a type; a layer named by neither
keeps real controls. As in a spec, one set applies to the layer's primary controls (the weight
of dense and conv2d, γ and β of batchnorm), a mapping to the controls it names.

The module's weights W become the start values θ⁰ = Q(W):

* real: θ⁰ = W (exactly);
* box [lo, hi]: θ⁰ = clip(W, lo, hi);
* binary: θ⁰ = sign(W), sign(0) = +1 (BinaryConnect's quantizer, ``sign``);
* ternary: θ⁰ = sign(W)·[|W| > Δ], Δ = 0.7·mean|W| per layer (TWN's ``ternary-threshold``; its
  scale α = mean{|W| > Δ} is dropped, as ocdl's ternary set is {−1, 0, +1}: a batchnorm after
  the layer absorbs it);
* other finite levels: the nearest level (``nearest``).

The quantizers are those of :mod:`ocdl.solvers.quantizers`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..controls import Binary, Box, ControlSet, Levels, Real, Ternary, control_from_dict
from ..errors import SpecError, TorchImportError, did_you_mean

TWN_DELTA = 0.7  # TWN's threshold factor (Li, Zhang & Liu 2016), the quantizer's default

Choice = ControlSet | dict[str, ControlSet]


def parse_choices(controls: Mapping[str, Any] | None) -> dict[str, Choice]:
    """Each value of ``controls`` as a set, or a mapping control name → set."""
    out: dict[str, Choice] = {}
    for key, v in (controls or {}).items():
        if not isinstance(key, str) or not key:
            raise TorchImportError(f"controls: the key {key!r} is not a layer name or type")
        try:
            if isinstance(v, ControlSet):
                out[key] = v
            elif isinstance(v, Mapping) and "set" not in v:
                out[key] = {str(k): c if isinstance(c, ControlSet) else
                            control_from_dict(c, f"controls.{key}.{k}") for k, c in v.items()}
            else:
                out[key] = control_from_dict(dict(v) if isinstance(v, Mapping) else v,
                                             f"controls.{key}")
        except SpecError as e:
            raise TorchImportError(f"{e}; a control set is real, binary, ternary, "
                                   "{set: box, lo, hi} or {set: levels, values: [...]}") from None
    return out


class Chooser:
    """Picks the set of each layer (by qualified name, else type) and records which keys of
    ``controls`` were used, so that a key naming no layer is reported."""

    def __init__(self, controls: Mapping[str, Any] | None):
        self.choices = parse_choices(controls)
        self.used: set[str] = set()
        self.names: list[str] = []
        self.kinds: list[str] = []

    def choose(self, qualname: str, kind: str) -> Choice | None:
        self.names.append(qualname)
        self.kinds.append(kind)
        for key in (qualname, kind):
            if key in self.choices:
                self.used.add(key)
                return self.choices[key]
        return None

    def check_all_used(self) -> None:
        unused = [k for k in self.choices if k not in self.used]
        if unused:
            k = unused[0]
            hint = did_you_mean(k, self.names + self.kinds)
            raise TorchImportError(
                f"controls: '{k}' names no layer with weights{hint}; layers: "
                f"{', '.join(self.names) or 'none'}; types: "
                f"{', '.join(sorted(set(self.kinds))) or 'none'}")


def set_of(choice: Choice | None, control: str, primary: bool) -> ControlSet:
    """The set of one control under a layer's choice (real when the choice does not name it)."""
    if isinstance(choice, ControlSet):
        return choice if primary else Real()
    if isinstance(choice, dict):
        return choice.get(control, Real())
    return Real()


def start_value(cset: ControlSet, w: torch.Tensor) -> torch.Tensor:
    """θ⁰ = Q(W) in the set ``cset`` (see the module docstring); a new tensor like ``w``."""
    from ..solvers.quantizers import Nearest, sign_into_, ternarise_
    w = w.detach()
    if isinstance(cset, Real):
        return w.clone()
    if isinstance(cset, Box):
        return cset.project(w.clone())
    theta = torch.empty_like(w)
    if isinstance(cset, Binary):
        sign_into_([theta], [w])
    elif isinstance(cset, Ternary):
        ternarise_([theta], [w], TWN_DELTA, [torch.empty_like(w)])
    elif isinstance(cset, Levels):
        q = Nearest({})
        q.levels = [list(cset.values)]  # what Nearest.setup reads from a System's control
        q.quantize_([theta], [w], None)
    else:  # pragma: no cover - every set of ocdl.controls is handled above
        raise TorchImportError(f"no start value for the set {cset.describe()}")
    return theta
