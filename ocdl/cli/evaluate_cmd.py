"""``ocdl evaluate``: a finished (or stopped) run's controls on its test, valid or train split,
optionally with the BatchNorm statistics recomputed on the clean training images
(:mod:`ocdl.run.evaluation`). Reads the run folder, never writes to it."""
from __future__ import annotations

import json

import click

from .solve_cmd import DEVICE_HELP


@click.command("evaluate")
@click.argument("run", type=click.Path())
@click.option("--controls", type=click.Choice(["auto", "final", "best", "last"]),
              default="auto", show_default=True,
              help="final (controls.pt, written when the run ended), best (best.pt, the best "
                   "evaluated epoch) or last (last.pt, the latest checkpoint); auto: final if "
                   "the run finished, else last")
@click.option("--split", type=click.Choice(["test", "valid", "train"]), default="test",
              show_default=True, help="the split to evaluate on (never augmented)")
@click.option("--recalibrate-bn", is_flag=True,
              help="also evaluate with every BatchNorm's running statistics recomputed from the "
                   "clean training images (one pass, controls fixed)")
@click.option("--device", help=DEVICE_HELP)
@click.option("--model", help="for an exported file without the spec inside (a torch state "
              "dict without its FILE.yaml): the spec file, shipped model or run folder")
@click.option("--json", "as_json", is_flag=True, help="print the numbers as one JSON object")
def evaluate(run, controls, split, recalibrate_bn, device, model, as_json) -> None:
    """Evaluate the trained network of RUN (a folder of ocdl solve, or a file of ocdl
    export, scored through the file itself): mean terminal loss, accuracy and non-zero
    fraction.

    \b
    Examples:
      ocdl evaluate runs/quickstart-emsa-ternary-20250101-120000
      ocdl evaluate runs/cifar --controls best --recalibrate-bn
      ocdl evaluate qs.ocdl
      ocdl evaluate qs.pt --model quickstart
    """
    from ..api import evaluate as api_evaluate
    result = api_evaluate(run, controls=controls, split=split, device=device,
                          recalibrate_bn=recalibrate_bn, model=model)
    click.echo(json.dumps(result.to_dict()) if as_json else result.describe())
