"""One torch.fx call node → what it maps to (:mod:`.layers` for layers, :mod:`.functions` for
functions and tensor methods), or a :class:`~ocdl.errors.TorchImportError` naming it."""
from __future__ import annotations

import torch.nn as nn
from torch import fx

from .functions import FUNCTIONS, METHODS, SUPPORTED, _name_of
from .layers import MODULES, At, Layer, Mapped


def map_node(node: fx.Node, root: nn.Module, where: str) -> Mapped:
    """The :class:`Layer`, :class:`Alias` or :class:`Meta` of one call node (see the module
    docstring); anything else is a :class:`TorchImportError`."""
    at = At(node, root, where)
    if node.op == "call_module":
        fn = MODULES.get(type(at.module))
        if fn is None:
            kind = type(at.module).__name__
            hint = (" (drop it: ocdl's terminal cost cross_entropy applies the softmax)"
                    if kind in ("Softmax", "LogSoftmax") else "")
            raise at.refuse(f"the layer {kind} has no ocdl op{hint}",
                            f"ocdl maps {SUPPORTED}; rewrite the module with these, or add an "
                            "op to ocdl/ops")
        mapped = fn(at, at.module)
        if isinstance(mapped, Layer):
            mapped.kind = type(at.module).__name__
    elif node.op == "call_function":
        fn = FUNCTIONS.get(node.target)
        if fn is None:
            raise at.refuse(f"the function {_name_of(node.target)} has no ocdl op",
                            f"ocdl maps {SUPPORTED}")
        mapped = fn(at)
    elif node.op == "call_method":
        fn = METHODS.get(node.target)
        if fn is None:
            raise at.refuse(f"the tensor method .{node.target}() has no ocdl op",
                            f"ocdl maps {SUPPORTED}")
        mapped = fn(at)
    else:  # get_attr: a parameter or buffer read outside its layer
        raise at.refuse(f"reads the tensor '{node.target}' directly (a functional layer with "
                        "its own weights, or a constant)", "use nn.Linear/nn.Conv2d/"
                        "nn.BatchNorm modules, whose weights ocdl maps to controls")
    if isinstance(mapped, Layer) and not mapped.inputs:
        mapped.inputs = [at.tensor(at.first, "the input")]
    return mapped
