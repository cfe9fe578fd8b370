"""``ocdl export``: a run's trained network as a file to deploy: ocdl's packed format, a torch
state dict, safetensors or ONNX (:mod:`ocdl.deploy`). Reads the run folder, never writes to
it."""
from __future__ import annotations

import click

FORMAT_NAMES = ["packed", "torch", "safetensors", "onnx"]


@click.command("export")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMAT_NAMES), default="packed",
              show_default=True,
              help="packed (ocdl's compact format: discrete controls at 1-2 bits or sparse, "
                   "the spec inside), torch (state dict by torch.save, the spec in FILE.yaml), "
                   "safetensors or onnx (the spec in their metadata)")
@click.option("--controls", type=click.Choice(["auto", "final", "best", "last"]),
              default="auto", show_default=True,
              help="which controls of the run, as for ocdl evaluate")
@click.option("--out", type=click.Path(dir_okay=False),
              help="the file to write [default: the run folder's name with the format's suffix "
                   "(.ocdl, .pt, .safetensors, .onnx)]")
@click.option("--float16", is_flag=True,
              help="packed only: real parameters and BatchNorm statistics in float16")
def export(run, fmt, controls, out, float16) -> None:
    """Export the trained network of RUN (a folder of ocdl solve) as a file; check it with
    ocdl evaluate FILE.

    \b
    Examples:
      ocdl export runs/qs --out qs.ocdl
      ocdl export runs/qs --format onnx --controls best --out qs.onnx
    """
    import os

    from ..api import export as api_export
    path = api_export(run, format=fmt, out=out, controls=controls, float16=float16)
    click.echo(f"wrote {path} ({fmt}, {os.path.getsize(path):,} bytes)")
