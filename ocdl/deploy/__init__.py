"""Deploy what was trained: a run's network exported as a file (``ocdl export``), read back
(:func:`load`) and evaluated (``ocdl evaluate FILE``).

=============  ==============================================================================
format         what the file holds
=============  ==============================================================================
packed         ocdl's own compact format (docs/packed-format.md): the spec and every tensor,
               binary controls at 1 bit, ternary at 2 bits or sparse, k levels at ⌈log2 k⌉
               bits, real parameters and BatchNorm statistics in float32 (float16 on request)
torch          the module's ``state_dict()`` by ``torch.save`` (``torch.load(weights_only=
               True)`` reads it), the spec beside it in ``<file>.yaml``
safetensors    the same state dict as safetensors, the spec in its metadata
onnx           ``torch.onnx.export`` of the module (dynamic batch), the spec in its metadata
=============  ==============================================================================

:func:`load` with ``packed=True`` (:func:`load_packed_module`) runs a packed file with its
discrete weights kept packed and BatchNorm folded (:func:`fold_batchnorm`): ``fold.py``,
``packed_kernels.py``, ``packed_layers.py``, ``packed_module.py``.

One module per format (``packed_*``, ``state_dict``, ``safetensors_format``, ``onnx_format``);
optional packages (safetensors, onnx, onnxscript, onnxruntime) are imported only when their
format is used, with a one-line :class:`~ocdl.errors.MissingPackageError` when missing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DeployError

FORMATS = {"packed": ".ocdl", "torch": ".pt", "safetensors": ".safetensors", "onnx": ".onnx"}

__all__ = ["FORMATS", "export", "fold_batchnorm", "load", "load_packed_module"]


def export(run_dir: str | Path, *, format: str = "packed", out: str | Path | None = None,
           controls: str = "auto", float16: bool = False) -> Path:
    """Write the trained network of the run folder ``run_dir`` (``controls``: ``auto``,
    ``final``, ``best`` or ``last``, as for ``ocdl evaluate``) as a file of ``format`` at
    ``out`` (default ``<run folder name><suffix>`` in the current folder); returns its path.
    ``float16``: real parameters and statistics in float16 (packed only)."""
    if format not in FORMATS:
        raise DeployError(f"unknown export format '{str(format)[:40]}'; choose one of "
                          f"{', '.join(FORMATS)}")
    if float16 and format != "packed":
        raise DeployError("float16 applies to the packed format only; leave it out for "
                          f"--format {format}")
    from .source import trained
    tr = trained(run_dir, controls)
    path = Path(out) if out is not None else Path(Path(run_dir).resolve().name + FORMATS[format])
    if format == "packed":
        from .packed_write import write_packed
        return write_packed(tr, path, float16=float16)
    if format == "torch":
        from .state_dict import write_state_dict
        return write_state_dict(tr, path)
    if format == "safetensors":
        from .safetensors_format import write_safetensors
        return write_safetensors(tr, path)
    from .onnx_format import write_onnx
    return write_onnx(tr, path)


def load(path: str | Path, device: Any = "cpu", *, packed: bool = False):
    """The System of the packed file at ``path``, its controls and statistics loaded
    (:func:`ocdl.deploy.packed_read.load`); ``.to_module()`` gives the ``torch.nn.Module``.
    ``packed=True``: instead the CPU ``nn.Module`` whose discrete weights stay packed, with
    BatchNorm folded (:func:`load_packed_module`)."""
    if packed:
        if str(device) != "cpu":
            raise DeployError("packed inference runs on the CPU; leave out device or give cpu")
        return load_packed_module(path)
    from .packed_read import load as load_packed
    return load_packed(path, device)


def load_packed_module(path: str | Path, **options: Any):
    """The ``nn.Module`` of the packed file at ``path`` whose discrete dense/conv2d weights stay
    packed in memory, unpacked a block of rows at a time, BatchNorm folded into a scale and
    shift after them (:func:`ocdl.deploy.packed_module.load_packed_module`, its options)."""
    from .packed_module import load_packed_module as build
    return build(path, **options)


def fold_batchnorm(system: Any):
    """The float ``nn.Module`` of ``system`` with each dense/conv2d → batchnorm pair folded
    into s ⊙ (W x) + c (:func:`ocdl.deploy.fold.fold_batchnorm`)."""
    from .fold import fold_batchnorm as fold
    return fold(system)
