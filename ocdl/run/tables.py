"""Comparison tables of runs: the mean and spread over seeds of each solver's results, the
training time to reach an accuracy, and the files ``compare.md``, ``compare.csv`` and
``compare.json``."""
from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .checkpoint import write_text_atomic

if TYPE_CHECKING:
    from .results import CompareResult, RunResult


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


def table_cells(rows: list[dict[str, Any]], label_title: str = "solver",
                keys: Sequence[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """The header and body cells of the comparison table (as :func:`format_compare_table` and
    :func:`html_compare_table` show them): the label, the number of runs, the mean (± std) of each
    column of :data:`COMPARE_COLUMNS` (only those in ``keys`` if given), and the times to reach."""
    reach = [k for k in (rows[0] if rows else {}) if k.startswith(REACH)]
    columns = [c for c in COMPARE_COLUMNS if (keys is None or c[0] in keys) and (
        c[0] not in OPTIONAL_COLUMNS or any(r[c[0]][0] is not None for r in rows))]
    header = [label_title, "seeds"] + [title for _, title, _, _ in columns] + \
        [f"training time to {k[len(REACH):]}" for k in reach]
    body = [[r["solver"], str(r["seeds"])] +
            [_cell(r[key], scale, unit, r["seeds"]) for key, _, scale, unit in columns] +
            [_reach_cell(r[k], r["seeds"]) for k in reach]
            for r in rows]
    return header, body


def format_compare_table(rows: list[dict[str, Any]], label_title: str = "solver",
                         keys: Sequence[str] | None = None) -> str:
    """A plain-text table (also valid Markdown); ``keys``: only these columns of
    :data:`COMPARE_COLUMNS` (default all)."""
    header, body = table_cells(rows, label_title, keys)
    widths = [max(len(x) for x in col) for col in zip(header, *body)]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(b) for b in body])


def html_compare_table(rows: list[dict[str, Any]], label_title: str = "solver",
                       caption: str = "") -> str:
    """The same table as an HTML ``<table>`` (a notebook's view of a comparison)."""
    from html import escape
    header, body = table_cells(rows, label_title)
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    head = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"
    trs = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in b) + "</tr>" for b in body)
    return f"<table>{cap}<thead>{head}</thead><tbody>{trs}</tbody></table>"


def write_compare_files(result: CompareResult) -> list[Path]:
    """``compare.md`` (the table), ``compare.csv`` (one row per run: the records of
    :meth:`CompareResult.to_records`, with the label and the settings that tell runs apart),
    ``compare.json``."""
    import csv
    import io
    out = Path(result.out_dir)
    md = out / "compare.md"
    write_text_atomic(md, f"# {result.model}\n\n{result.format_table()}\n")
    records = result.to_records()
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(records[0]) if records else ["label"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    csv_path = out / "compare.csv"
    write_text_atomic(csv_path, buf.getvalue())
    js = out / "compare.json"
    write_text_atomic(js, json.dumps({"model": result.model, "table": result.table,
                                      "runs": {k: [r.summary() for r in v]
                                               for k, v in result.runs.items()}},
                                     indent=2) + "\n")
    return [md, csv_path, js]
