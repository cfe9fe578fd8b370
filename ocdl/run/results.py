"""What a run returns and leaves behind: :class:`RunResult`, ``summary.json``, ``controls.pt``,
and :class:`CompareResult` for several (solver, seed) runs."""
from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint import write_text_atomic
from .config import ConfigError


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


def load_run(run_dir: str | Path) -> RunResult:
    """A run read back from its folder: the per-epoch history from ``log.jsonl``, the outcome
    (model, solver, seed, device, status, wall time, non-zero fraction) from ``summary.json``;
    a run that never wrote one (killed, or still running) gets status ``unfinished``, its model,
    solver and device from ``config.yaml`` and the rest from its last epoch. Accuracies are recomputed
    from the history as the loop does (best by valid accuracy, else by test accuracy)."""
    from .config import ConfigError
    from .metrics import read_log
    p = Path(run_dir)
    if not (p / "log.jsonl").is_file():
        raise ConfigError(f"{p}: not a run folder (no log.jsonl there); give folders written by "
                          "ocdl solve or ocdl compare")
    history = [r for r in read_log(p / "log.jsonl") if r.get("type") == "epoch"]
    try:
        s = json.loads((p / "summary.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        s = {}
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{p / 'summary.json'}: unreadable ({e}); delete it to read the run "
                          "from its log alone") from None
    if not s:
        import yaml
        try:
            cfg = yaml.safe_load((p / "config.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            cfg = {}
        s = {"model": (cfg.get("model") or {}).get("name", "?"),
             "solver": (cfg.get("solver") or {}).get("name", "?"),
             "seed": (cfg.get("run") or {}).get("seed", 0),
             "device": (cfg.get("run") or {}).get("device_resolved", "?"),
             "status": "unfinished"}
    best: dict[str, Any] = {}
    for h in history:
        best = improved_best(best, h) or best
    last = history[-1] if history else {}
    return result_from_history(
        history, run_dir=p, model=str(s.get("model", "?")), solver=str(s.get("solver", "?")),
        seed=int(s.get("seed", 0)), device=str(s.get("device", "?")), best=best,
        wall_time=float(s.get("wall_time", last.get("time", 0.0))),
        nonzero=s.get("nonzero_fraction", last.get("nonzero")),
        status=str(s.get("status", "unfinished")))


def write_summary(result: RunResult, extra: dict[str, Any] | None = None) -> None:
    data = {**result.summary(), **(extra or {})}
    write_text_atomic(Path(result.run_dir) / "summary.json",
                      json.dumps(data, indent=2, allow_nan=False) + "\n")


# ---------------------------------------------------------------------- compare
def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    vs = [v for v in values if v is not None and math.isfinite(v)]
    if not vs:
        return None, None
    return statistics.fmean(vs), (statistics.stdev(vs) if len(vs) > 1 else 0.0)


COMPARE_COLUMNS = (("final_test_acc", "final test acc", 100.0, "%"),
                   ("best_test_acc", "best test acc", 100.0, "%"),
                   ("nonzero_fraction", "non-zero", 100.0, "%"),
                   ("dead_units", "dead units", 100.0, "%"),
                   ("wall_time", "wall time", 1.0, "s"),
                   ("train_time", "training time", 1.0, "s"))
OPTIONAL_COLUMNS = ("dead_units",)
"""Columns of :data:`COMPARE_COLUMNS` that the table shows only when some row has a value (runs
logged before ocdl counted dead units, and runs without discrete weights, have none)."""


def time_to_reach(history: list[dict[str, Any]], acc: float) -> dict[str, Any] | None:
    """The first evaluated epoch whose test accuracy is ``acc`` or more: ``{"epoch",
    "train_time"}`` (seconds of training up to its end, the evaluations left out; the wall time
    for logs without it), or None if the run never got there."""
    for h in history:
        t = h.get("test_acc")
        if t is not None and t >= acc:
            return {"epoch": h.get("epoch"), "train_time": h.get("train_time", h.get("time"))}
    return None


def accuracy_level(value: Any) -> float:
    """A test accuracy to reach, given as a fraction (0.89) or in percent (89, "89 %"; a
    number up to 1 is a fraction unless written with %)."""
    text = str(value).strip()
    percent = text.endswith("%")
    try:
        v = float(text.rstrip("%").strip())
    except ValueError:
        v = math.nan
    if percent or v > 1.0:
        v /= 100.0
    if not 0.0 < v <= 1.0:
        raise ConfigError(f"accuracy to reach must be a fraction in (0, 1] or a percentage in "
                          f"(1, 100], e.g. 0.89 or 89; got {value!r}")
    return v


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
        return format_compare_table(self.table, self.label_title)


REACH = "reach "  # table keys "reach 89 %": the time to reach that test accuracy


def reach_key(acc: float) -> str:
    """The table key of the time to reach test accuracy ``acc``."""
    return f"{REACH}{acc * 100:g} %"


def compare_table(runs: dict[str, list[RunResult]], reach: Iterable[float] = ()
                  ) -> list[dict[str, Any]]:
    """One row per label: (mean, std) over its runs of each of :data:`COMPARE_COLUMNS`, and for
    each accuracy in ``reach`` (fractions) the runs that reached it (``reached``) with the mean
    and std of their training time and epoch to get there (:func:`time_to_reach`)."""
    rows = []
    for solver, rs in runs.items():
        row: dict[str, Any] = {"solver": solver, "seeds": len(rs),
                               "status": ",".join(sorted({r.status for r in rs}))}
        for key, *_ in COMPARE_COLUMNS:
            row[key] = mean_std(getattr(r, key) for r in rs)
        for acc in reach:
            hits = [h for h in (time_to_reach(r.history, acc) for r in rs) if h is not None]
            row[reach_key(acc)] = {"reached": len(hits),
                                   "train_time": mean_std(h["train_time"] for h in hits),
                                   "epoch": mean_std(h["epoch"] for h in hits)}
        rows.append(row)
    return rows


def _reach_cell(cell: dict[str, Any], seeds: int) -> str:
    """``403.1 s (epoch 132)``; over seeds ``m ± s``; ``[k of n]`` if not every run got there."""
    if not cell["reached"]:
        return "not reached"
    (t, ts), (e, es) = cell["train_time"], cell["epoch"]
    many = cell["reached"] > 1
    text = "-" if t is None else f"{t:.1f}" + (f" ± {ts:.1f}" if many else "") + " s"
    if e is not None:
        text += f" (epoch {e:.0f}" + (f" ± {es:.0f}" if many else "") + ")"
    if cell["reached"] < seeds:
        text += f" [{cell['reached']} of {seeds}]"
    return text


def _cell(ms: tuple[float | None, float | None], scale: float, unit: str, seeds: int) -> str:
    m, s = ms
    if m is None:
        return "-"
    digits = 2 if unit == "%" else 1
    text = f"{m * scale:.{digits}f}"
    if seeds > 1:
        text += f" ± {s * scale:.{digits}f}"
    return f"{text} {unit}"


def format_compare_table(rows: list[dict[str, Any]], label_title: str = "solver") -> str:
    """A plain-text table (also valid Markdown)."""
    reach = [k for k in (rows[0] if rows else {}) if k.startswith(REACH)]
    columns = [c for c in COMPARE_COLUMNS if c[0] not in OPTIONAL_COLUMNS
               or any(r[c[0]][0] is not None for r in rows)]
    header = [label_title, "seeds"] + [title for _, title, _, _ in columns] + \
        [f"training time to {k[len(REACH):]}" for k in reach]
    body = [[r["solver"], str(r["seeds"])] +
            [_cell(r[key], scale, unit, r["seeds"]) for key, _, scale, unit in columns] +
            [_reach_cell(r[k], r["seeds"]) for k in reach]
            for r in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *body)]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(b) for b in body])


def write_compare_files(result: CompareResult) -> list[Path]:
    """``compare.md`` (the table), ``compare.csv`` (one row per run), ``compare.json``."""
    out = Path(result.out_dir)
    md = out / "compare.md"
    write_text_atomic(md, f"# {result.model}\n\n{result.format_table()}\n")
    cols = ["solver", "seed", "status", "epochs", "final_test_acc", "best_test_acc",
            "best_valid_acc", "test_acc_at_best_valid", "nonzero_fraction", "dead_units",
            "wall_time", "train_time", "run_dir"]
    lines = [",".join(cols)]
    for rs in result.runs.values():
        for r in rs:
            s = r.summary()
            lines.append(",".join("" if s.get(c) is None else str(s.get(c)) for c in cols))
    csv = out / "compare.csv"
    write_text_atomic(csv, "\n".join(lines) + "\n")
    js = out / "compare.json"
    write_text_atomic(js, json.dumps({"model": result.model, "table": result.table,
                                      "runs": {k: [r.summary() for r in v]
                                               for k, v in result.runs.items()}},
                                     indent=2) + "\n")
    return [md, csv, js]
