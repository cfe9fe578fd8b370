"""Results as rows, and the short views a REPL or a notebook shows.

:func:`run_records` turns runs into flat records, one dict per run, for
``RunResult.to_records()`` and ``CompareResult.to_records()`` (and so ``to_pandas()``): the
label the comparison table gives the run, its model, solver, seed, status, epochs, final and best
test accuracy, non-zero fraction, times and folder, and a column per setting that tells the runs
apart: each ``--set`` setting a run was given (``rho``, ``data.limit``) and each solver setting
whose value differs between runs of the same solver preset. :func:`compare_repr` and
:func:`run_repr` are the short texts of the results' ``repr``; :func:`run_html` the HTML view of
one run (a comparison's is :func:`ocdl.run.tables.html_compare_table`).
"""
from __future__ import annotations

import json
import textwrap
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingPackageError

if TYPE_CHECKING:
    from .results import CompareResult, RunResult

#: the record's columns before the settings, and after them
HEAD_KEYS = ("model", "solver")
TAIL_KEYS = ("seed", "status", "epochs", "final_test_acc", "best_test_acc", "best_valid_acc",
             "test_acc_at_best_valid", "nonzero_fraction", "dead_units", "wall_time",
             "train_time", "device", "run_dir")
RESERVED = frozenset(("label",) + HEAD_KEYS + TAIL_KEYS)
#: the longest line of a short ``repr`` and the most table rows it shows
WIDTH = 100
MAX_ROWS = 16
MAX_LABEL = 24
#: the columns of the comparison table in a ``repr`` (all of them are wider than a screen)
SHORT_COLUMNS = ("final_test_acc", "best_test_acc", "nonzero_fraction", "train_time")


def run_config(result: RunResult) -> dict[str, Any]:
    """The run's recorded configuration: the one it returned with, else its folder's
    ``config.yaml`` (a run read back by :func:`ocdl.run.folder.load_run`); ``{}`` if neither."""
    if result.config:
        return result.config
    path = Path(result.run_dir) / "config.yaml"
    if not path.is_file():
        return {}
    from ..errors import OcdlError
    from .folder import read_config
    try:
        return read_config(path).data
    except OcdlError:
        return {}


def _flat(value: Any) -> Any:
    """A cell value: lists become tuples and mappings JSON text, so every cell is hashable (a
    pandas ``groupby`` key)."""
    if isinstance(value, list):
        return tuple(_flat(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def _setting_keys(configs: list[dict[str, Any]]) -> list[str]:
    """The settings that become columns: every ``--set`` key given to some run, then every
    solver setting (but its own ``seed``, which follows the run's) whose value differs between
    runs of the same preset."""
    keys: dict[str, None] = {}
    for c in configs:
        keys.update(dict.fromkeys(str(k) for k in (c.get("overrides") or {})))
    by_preset: dict[str, list[dict[str, Any]]] = {}
    for c in configs:
        solver = c.get("solver") or {}
        by_preset.setdefault(str(solver.get("name")), []).append(solver.get("hp") or {})
    missing = object()
    for hps in by_preset.values():
        for k in dict.fromkeys(k for hp in hps for k in hp):
            values = [json.dumps(hp.get(k, missing), sort_keys=True, default=str) for hp in hps]
            if k != "seed" and len(set(values)) > 1:
                keys.setdefault(k, None)
    return list(keys)


def run_records(runs: list[tuple[str | None, RunResult]]) -> list[dict[str, Any]]:
    """One flat record per ``(label, run)`` (label ``None``: no ``label`` column); see the
    module docstring."""
    configs = [run_config(r) for _, r in runs]
    settings = _setting_keys(configs)
    records = []
    for (label, r), c in zip(runs, configs):
        summary = r.summary()
        hp = (c.get("solver") or {}).get("hp") or {}
        given = c.get("overrides") or {}
        row: dict[str, Any] = {} if label is None else {"label": label}
        row.update({k: summary[k] for k in HEAD_KEYS})
        for k in settings:
            bare = k[len("solver."):] if k.startswith("solver.") else k
            value = hp[bare] if bare in hp and k != "seed" else given.get(k)
            row["solver." + k if k in RESERVED else k] = _flat(value)
        row.update({k: summary[k] for k in TAIL_KEYS})
        records.append(row)
    return records


def to_pandas(records: list[dict[str, Any]]):
    """The records as a ``pandas.DataFrame`` (pandas is an optional extra)."""
    try:
        import pandas as pd
    except ImportError:
        raise MissingPackageError("to_pandas() needs pandas, which is not installed: "
                                  "pip install 'ocdl[pandas]' (or pip install pandas)") from None
    return pd.DataFrame.from_records(records)


def _number(v: Any) -> str:
    return repr(round(v, 4)) if isinstance(v, float) else repr(v)


def run_repr(r: RunResult) -> str:
    """A few lines: what ran, how it ended, its accuracies, sparsity, time and folder."""
    fields = [f"model={r.model!r}", f"solver={r.solver!r}", f"seed={r.seed}",
              f"status={r.status!r}", f"epochs={r.epochs}"]
    fields += [f"{k}={_number(getattr(r, k))}" for k in
               ("final_test_acc", "best_test_acc", "nonzero_fraction", "wall_time")]
    fields.append(f"run_dir={str(r.run_dir)!r}")
    return textwrap.fill(", ".join(fields), WIDTH - 1, initial_indent="RunResult(",
                         subsequent_indent=" " * 10, break_long_words=False,
                         break_on_hyphens=False) + ")"


def _cut(line: str) -> str:
    return line if len(line) <= WIDTH else line[:WIDTH - 1] + "…"


def compare_repr(result: CompareResult, note: str = "") -> str:
    """A screenful: what was compared, where (and the line ``note``), the table's main columns
    (at most :data:`MAX_ROWS` rows), and how to get the rest."""
    from .tables import format_compare_table
    n = sum(len(rs) for rs in result.runs.values())
    seeds = sorted({len(rs) for rs in result.runs.values()})
    per = "/".join(map(str, seeds)) or "0"
    title = result.label_title
    rows = [dict(row, solver=row["solver"] if len(row["solver"]) <= MAX_LABEL
                 else row["solver"][:MAX_LABEL - 1] + "…") for row in result.table[:MAX_ROWS]]
    lines = [f"{type(result).__name__}({result.model!r}: {len(result.runs)} {title}(s) × "
             f"{per} seed(s), {n} run(s))", f"  in {result.out_dir}"] + ([note] if note else [])
    if rows:
        lines += format_compare_table(rows, title, keys=SHORT_COLUMNS).splitlines()
    if len(result.table) > MAX_ROWS:
        lines.append(f"… and {len(result.table) - MAX_ROWS} more row(s): .format_table()")
    lines.append("  .to_pandas() / .to_records(): one row per run; .format_table(): every "
                 "column; .runs[label]")
    return "\n".join(_cut(x) for x in lines)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


def run_html(r: RunResult) -> str:
    """One run as a small HTML table (a notebook's view of a :class:`RunResult`)."""
    cells = [("final test accuracy", _pct(r.final_test_acc)),
             ("best test accuracy", _pct(r.best_test_acc)),
             ("non-zero controls", _pct(r.nonzero_fraction)),
             ("dead units", _pct(r.dead_units)),
             ("wall time", f"{r.wall_time:.1f} s"),
             ("training time", "-" if r.train_time is None else f"{r.train_time:.1f} s"),
             ("run folder", str(r.run_dir))]
    caption = (f"{r.model}, solver {r.solver}, seed {r.seed}, {r.epochs} epoch(s) on "
               f"{r.device} ({r.status})")
    trs = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in cells)
    return f"<table><caption>{escape(caption)}</caption><tbody>{trs}</tbody></table>"
