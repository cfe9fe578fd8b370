"""What a run returns: :class:`RunResult` (and its ``summary.json``), and :class:`CompareResult`
for several (solver, seed) runs."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint import write_text_atomic

@dataclass
class RunResult:
    """The outcome of one run.

    history: one dict per epoch (``loss``, solver metrics averaged over the epoch, ``valid_acc``,
      ``test_acc``, ``valid_loss``, ``test_loss``, ``nonzero``, ``nonzero/<stage>``, ``time`` …).
    final_test_acc: test accuracy after the last evaluated epoch (the last one unless the run
      was interrupted with ``run.eval_every`` > 1); best_test_acc: the highest over epochs
      (the paper's "best"); test_acc_at_best_valid: test accuracy of the epoch with the best
      valid accuracy (the one saved as ``best.pt``).
    nonzero_fraction: non-zero fraction of the discrete controls at the end.
    wall_time: seconds of the run (training and evaluation, summed over resumed parts);
      ``train_time`` (a property) the same without the evaluations.
    status: ``completed``, ``interrupted`` or ``diverged``.
    """

    run_dir: Path
    model: str
    solver: str
    seed: int
    epochs: int
    history: list[dict[str, Any]]
    final_test_acc: float | None
    best_test_acc: float | None
    best_valid_acc: float | None
    best_epoch: int | None
    test_acc_at_best_valid: float | None
    nonzero_fraction: float | None
    wall_time: float
    device: str
    status: str = "completed"
    system: Any = field(default=None, repr=False)
    config: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def train_time(self) -> float | None:
        """Seconds of training (the wall time less the evaluations), from the last epoch."""
        return self.history[-1].get("train_time") if self.history else None

    @property
    def dead_units(self) -> float | None:
        """Fraction of the output units of the discrete weights that were dead (rows all zero)
        at the last epoch; None for runs without such weights or logged before ocdl counted."""
        return self.history[-1].get("dead") if self.history else None

    def summary(self) -> dict[str, Any]:
        """The JSON-friendly part (what ``summary.json`` holds)."""
        return {"model": self.model, "solver": self.solver, "seed": self.seed,
                "status": self.status, "epochs": self.epochs,
                "final_test_acc": self.final_test_acc, "best_test_acc": self.best_test_acc,
                "best_valid_acc": self.best_valid_acc, "best_epoch": self.best_epoch,
                "test_acc_at_best_valid": self.test_acc_at_best_valid,
                "nonzero_fraction": self.nonzero_fraction, "dead_units": self.dead_units,
                "wall_time": self.wall_time,
                "train_time": self.train_time, "device": self.device,
                "run_dir": str(self.run_dir)}

    def describe(self) -> str:
        """A few human lines: accuracies, sparsity, time, folder."""
        def pct(v):
            return "-" if v is None else f"{100 * v:.2f} %"
        lines = [f"model {self.model}, solver {self.solver}, seed {self.seed}, "
                 f"{self.epochs} epoch(s) on {self.device} ({self.status})"]
        last = self.history[-1] if self.history else {}
        if self.final_test_acc is None and last.get("J") is not None:  # no classes: the objective
            lines.append(f"  objective J          {last['J']:.10g} (the last epoch's mean, before each step)")
            if last.get("test_loss") is not None:
                lines.append(f"  terminal cost        {last['test_loss']:.10g} (after the last step)")
        else:
            lines += [f"  final test accuracy  {pct(self.final_test_acc)}",
                      f"  best test accuracy   {pct(self.best_test_acc)}"]
        if self.best_valid_acc is not None:
            lines.append(f"  best valid accuracy  {pct(self.best_valid_acc)} (epoch "
                         f"{self.best_epoch}; test there {pct(self.test_acc_at_best_valid)})")
        lines.append(f"  non-zero controls    {pct(self.nonzero_fraction)}")
        if self.dead_units is not None:
            lines.append(f"  dead units           {pct(self.dead_units)} (output units whose "
                         "weight rows are all zero)")
        per = self.wall_time / self.epochs if self.epochs else 0.0
        train = "" if self.train_time is None else f"; training {self.train_time:.1f} s"
        lines.append(f"  wall time            {self.wall_time:.1f} s ({per:.2f} s/epoch{train})")
        lines.append(f"  run folder           {self.run_dir}")
        return "\n".join(lines)

    def to_records(self) -> list[dict[str, Any]]:
        """This run as a list of one flat dict: model, solver, each ``--set`` setting, seed,
        status, epochs, final and best test accuracy, non-zero fraction, times, device and run
        folder (:mod:`ocdl.run.records`)."""
        from .records import run_records
        return run_records([(None, self)])

    def to_pandas(self):
        """:meth:`to_records` as a one-row ``pandas.DataFrame`` (``pip install 'ocdl[pandas]'``)."""
        from .records import to_pandas
        return to_pandas(self.to_records())

    def __repr__(self) -> str:  # the history and the system stay out of it (.history, .system)
        from .records import run_repr
        return run_repr(self)

    def _repr_html_(self) -> str:
        from .records import run_html
        return run_html(self)


def result_from_history(history: list[dict[str, Any]], *, run_dir: Path, model: str,
                        solver: str, seed: int, device: str, best: dict[str, Any],
                        wall_time: float, nonzero: float | None, status: str,
                        system: Any = None, config: dict[str, Any] | None = None) -> RunResult:
    tests = [h.get("test_acc") for h in history if h.get("test_acc") is not None]
    return RunResult(
        run_dir=Path(run_dir), model=model, solver=solver, seed=seed,
        epochs=len(history), history=list(history),
        final_test_acc=tests[-1] if tests else None,
        best_test_acc=max(tests) if tests else None,
        best_valid_acc=best.get("acc") if best.get("by") == "valid" else None,
        best_epoch=best.get("epoch"),
        test_acc_at_best_valid=best.get("test_acc"),
        nonzero_fraction=nonzero, wall_time=wall_time, device=device, status=status,
        system=system, config=config or {})


def improved_best(best: dict[str, Any], record: dict[str, Any]) -> dict[str, Any] | None:
    """The best epoch after the epoch ``record`` if it improves on ``best``, else None: best by
    valid accuracy (by test accuracy when there is no valid split), the first of equals."""
    by = "valid" if record.get("valid_acc") is not None else "test"
    acc = record.get(f"{by}_acc")
    if acc is None or (best.get("acc") is not None and acc <= best["acc"]):
        return None
    return {"acc": acc, "by": by, "epoch": record["epoch"], "test_acc": record.get("test_acc")}


def write_summary(result: RunResult, extra: dict[str, Any] | None = None) -> None:
    data = {**result.summary(), **(extra or {})}
    write_text_atomic(Path(result.run_dir) / "summary.json",
                      json.dumps(data, indent=2, allow_nan=False) + "\n")


@dataclass
class CompareResult:
    """Runs of several solvers (and seeds) on one model: ``runs[solver]`` lists the seeds' runs;
    ``table`` has one row per solver with (mean, std) of each column; ``plots`` the PNG files."""

    out_dir: Path
    model: str
    runs: dict[str, list[RunResult]]
    table: list[dict[str, Any]]
    plots: list[Path] = field(default_factory=list)
    label_title: str = "solver"  # the first column's title ("run" for gathered runs)

    def format_table(self) -> str:
        from .tables import format_compare_table
        return format_compare_table(self.table, self.label_title)

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per run (per label and seed): its ``label`` in the table, model,
        solver, the settings that tell the runs apart (each ``--set`` setting, each solver
        setting that differs between runs of one preset), seed, status, epochs, final and best
        test accuracy, non-zero fraction, times, device and run folder
        (:mod:`ocdl.run.records`)."""
        from .records import run_records
        return run_records([(label, r) for label, rs in self.runs.items() for r in rs])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (``--json`` of ``ocdl compare``, ``compare-runs`` and ``sweep``):
        the folder, the table's rows (each column's [mean, std] over the label's runs, and the
        counts) and :meth:`to_records`."""
        rows = [{k: list(v) if isinstance(v, tuple) else v for k, v in row.items()}
                for row in self.table]
        return {"model": self.model, "out_dir": str(self.out_dir), "label": self.label_title,
                "table": rows, "runs": self.to_records(), "plots": [str(p) for p in self.plots]}

    def to_pandas(self):
        """:meth:`to_records` as a ``pandas.DataFrame``, e.g. ``df.groupby("solver")
        ["final_test_acc"].mean()`` (``pip install 'ocdl[pandas]'``)."""
        from .records import to_pandas
        return to_pandas(self.to_records())

    def __repr__(self) -> str:  # a screenful; .format_table() and .to_pandas() have the rest
        from .records import compare_repr
        return compare_repr(self)

    def _repr_html_(self) -> str:
        from .tables import html_compare_table
        return html_compare_table(self.table, self.label_title,
                                  caption=f"{self.model}: {self.out_dir}")
