"""Import a ``torch.nn.Module`` as an ocdl model spec with its weights as initial controls
(:func:`from_torch`, ``ocdl import-torch``): tracing (:mod:`.graph`), the layer table
(:mod:`.layers`), control sets and start values (:mod:`.choices`), the result
(:mod:`.imported`)."""
from .imported import ImportedModel, from_torch

__all__ = ["ImportedModel", "from_torch"]
