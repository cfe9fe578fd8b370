"""``ocdl import-torch``: a torch module (returned by a function the user names) → a model spec
with its weights as initial controls (:func:`ocdl.from_torch`), written as YAML and a controls
file beside it, ready for ``ocdl solve``."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import TorchImportError

TARGET_HELP = ("pkg.module:function, or path/to/file.py:function; the function is called "
               "without arguments and returns the torch.nn.Module (a module instance or class "
               "works too)")


def load_module(target: str) -> Any:
    """The ``nn.Module`` that ``target`` (``pkg.module:attr`` or ``file.py:attr``) names: the
    attribute itself if it is a module instance, else what calling it without arguments
    returns. The working directory is on the import path, as for ``python -m``."""
    import torch.nn as nn
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise TorchImportError(f"'{target}' is not MODULE:FUNCTION; give e.g. "
                               "mypkg.nets:make_net or examples/torch_resnet.py:resnet")
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where)
        if not path.is_file():
            raise TorchImportError(f"{path}: no such Python file")
        spec = importlib.util.spec_from_file_location(f"_ocdl_import_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses and pickling look modules up by name
        spec.loader.exec_module(mod)
    else:
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        try:
            mod = importlib.import_module(where)
        except ModuleNotFoundError as e:
            raise TorchImportError(f"cannot import '{where}' ({e}); run from the folder that "
                                   "holds it or install the package") from None
    if not hasattr(mod, attr):
        raise TorchImportError(f"'{where}' has no attribute '{attr}'")
    obj = getattr(mod, attr)
    net = obj if isinstance(obj, nn.Module) else obj() if callable(obj) else obj
    if not isinstance(net, nn.Module):
        raise TorchImportError(f"{target} gave a {type(net).__name__}, not a torch.nn.Module")
    return net


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise TorchImportError(f"--input-shape {text!r}: give one sample's shape as positive "
                               "integers, e.g. 1,28,28 or 784")
    return shape


def parse_controls(text: str | None) -> dict[str, Any]:
    """``Linear=ternary,fc_out=binary`` (or a YAML mapping such as
    ``{conv1: {set: levels, values: [-1, 0, 1]}}``) → layer name or type → set."""
    if not text:
        return {}
    if text.lstrip().startswith("{"):
        from ..errors import SpecError
        from ..modelspec.yaml_io import parse_yaml
        try:
            data, _ = parse_yaml(text, "--controls")
        except SpecError as e:
            raise TorchImportError(str(e)) from None
        if not isinstance(data, dict):
            raise TorchImportError("--controls: expected a mapping of layer names or types to "
                                   "sets")
        return data
    out: dict[str, Any] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise TorchImportError(f"--controls: '{part}' is not NAME=SET; e.g. "
                                   "'Linear=ternary,fc_out=binary'")
        out[key.strip()] = value.strip()
    return out


@click.command("import-torch")
@click.argument("target", metavar="MODULE:FUNCTION")
@click.option("--input-shape", required=True, metavar="C,H,W",
              help="one sample's shape, without the batch: 1,28,28 or 784")
@click.option("--controls", metavar="NAME=SET,…",
              help="control sets by layer name or type, e.g. 'Linear=ternary,fc_out=binary' "
                   "(names win over types; default real); sets: real, binary, ternary, or a "
                   "YAML mapping for others")
@click.option("--cost", default="cross_entropy", show_default=True,
              type=click.Choice(["cross_entropy", "squared_hinge", "mse"]),
              help="the terminal cost Φ")
@click.option("--data", metavar="NAME", help="the spec's dataset (mnist, cifar-10, "
              "mnist-subset, a path); optional: ocdl solve --set data.name=… works too")
@click.option("--name", help="the spec's name (default: the module's class)")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="the spec to write (net.yaml); the initial controls go beside it "
                   "(net.controls.pt)")
def import_torch(target, input_shape, controls, cost, data, name, out) -> None:
    """Import the torch.nn.Module that MODULE:FUNCTION returns as an ocdl model spec; its
    weights become the initial controls (discrete sets: quantised), so that `ocdl solve
    OUT` starts from them.

    \b
    Examples:
      ocdl import-torch mypkg.nets:lenet --input-shape 1,28,28 --out lenet.yaml
      ocdl import-torch examples/torch_resnet.py:resnet --input-shape 3,32,32 \\
          --controls 'Conv2d=ternary,fc=real' --data cifar-10 --out resnet.yaml
    """
    from ..torch_import import from_torch
    net = load_module(target)
    imported = from_torch(net, input_shape=parse_shape(input_shape),
                          controls=parse_controls(controls), cost=cost, data=data, name=name)
    path = imported.save(out)
    n = sum(int(v.numel()) for k, v in imported.initial.items() if k in imported.parameters)
    click.echo(f"wrote {path} ({len(imported.spec.stages)} stages, {n:,} controls) and "
               f"{path.with_name(path.stem + '.controls.pt')}")
