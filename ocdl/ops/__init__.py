"""Ops: the kinds of stage maps f_t. Importing this package fills the registry ``OPS``."""
from . import elementwise, equation, layers, residual  # noqa: F401  (registration side effects)
from .base import OPS, ControlDecl, Op, Param, get_op

__all__ = ["OPS", "ControlDecl", "Op", "Param", "get_op"]
