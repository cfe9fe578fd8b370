"""``ocdl data``: list the named datasets, inspect one, fetch one into the cache.

    ocdl data list              # named datasets and where each was found
    ocdl data info NAME|PATH    # sizes, classes, label counts, pixel statistics, provenance
    ocdl data fetch NAME        # download a missing named dataset into the cache
    ocdl data search-path       # the folders searched, in order
"""
from __future__ import annotations

import click
from rich.table import Table

from ..errors import DataError
from .output import console, echo_json


@click.group(name="data")
def data() -> None:
    """Datasets: list the named ones, inspect one, fetch one into the cache."""


@data.command("list")
@click.option("--json", "as_json", is_flag=True, help="print the list as one JSON object")
def list_cmd(as_json: bool) -> None:
    """List the named datasets and where each is found (nothing is downloaded)."""
    from ..data.download import offline
    from ..data.load import embedded_path
    from ..data.registry import DATASETS
    from ..data.search import find_named
    rows = []
    for name, ds in DATASETS.items():
        found = None if ds.kind == "embedded" else find_named(name)
        tr, va = ds.default_split
        rows.append({"name": name, "title": ds.title, "sample_shape": list(ds.sample_shape),
                     "train": tr, "valid": va, "test": ds.sizes[1], "classes": len(ds.classes),
                     "kind": ds.kind,
                     "found": (str(embedded_path(name)) if ds.kind == "embedded"
                               and embedded_path(name).is_file() else
                               str(found.path) if found else None),
                     "format": found.format if found else None})
    if as_json:
        echo_json({"datasets": rows, "offline": offline()})
        return
    t = Table(title="named datasets")
    for col in ("name", "dataset", "sample", "train/valid/test", "classes", "found"):
        t.add_column(col)
    for r in rows:
        if r["kind"] == "embedded":
            where = "embedded in ocdl" if r["found"] else "[red]missing[/red]"
        else:
            where = (f"{r['found']} ({r['format']})" if r["found"] else
                     "[yellow]not found[/yellow] — " + ("offline" if offline() else
                                                       "downloads on first use"))
        t.add_row(r["name"], r["title"], "×".join(map(str, r["sample_shape"])),
                  f"{r['train']:,}/{r['valid']:,}/{r['test']:,}", str(r["classes"]), where)
    con = console()
    con.print(t)
    con.print("Your own data: pass a path (.npz with x_train, y_train[, x_test, y_test]; an image "
              "folder with one sub-folder per class; or a tar of one).")


@data.command("search-path")
def search_path_cmd() -> None:
    """Show the folders searched for named datasets, in order."""
    from ..data.search import search_path
    t = Table(title="dataset search path")
    t.add_column("#")
    t.add_column("folder")
    t.add_column("from")
    t.add_column("exists")
    for i, (folder, origin) in enumerate(search_path(), 1):
        t.add_row(str(i), str(folder), origin, "yes" if folder.is_dir() else "no")
    console().print(t)


@data.command("info")
@click.argument("name")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the valid split")
@click.option("--download/--no-download", default=True, show_default=True,
              help="download a missing named dataset")
@click.option("--json", "as_json", is_flag=True, help="print the facts as one JSON object")
def info_cmd(name: str, seed: int, download: bool, as_json: bool) -> None:
    """Load NAME (a named dataset or a path) and describe it."""
    from ..data.load import load_dataset
    from ..data.preprocess import channel_stats
    ds = load_dataset(name, seed=seed, download=download)
    parts = list(ds)
    per = [part.label_counts(ds.num_classes) for part in parts]
    facts = {"name": ds.name, "source": ds.source, "format": ds.info.get("format"),
             "array_cache": f"{ds.info.get('cache')} {ds.info.get('cache_entry', '')}".strip(),
             "sample_shape": list(ds.sample_shape), "dtype": str(ds.train.x.dtype),
             "classes": list(ds.classes), "valid": ds.info.get("valid_from"),
             "test": ds.info.get("test_from")}
    if len(ds.train):
        mean, std = channel_stats(ds.train.x)
        facts["train_mean"], facts["train_std"] = mean.tolist(), std.tolist()
    facts["samples_per_class"] = {part.name: [int(n) for n in p] for part, p in zip(parts, per)}
    if as_json:
        echo_json(facts)
        return
    con = console()
    t = Table(title=f"dataset {ds.name}", show_header=False)
    t.add_column("field")
    t.add_column("value")
    t.add_row("source", facts["source"])
    t.add_row("format", str(facts["format"]))
    t.add_row("array cache", facts["array_cache"])
    t.add_row("sample shape", "×".join(map(str, ds.sample_shape)) + f" ({facts['dtype']})")
    t.add_row("classes", ", ".join(ds.classes))
    t.add_row("valid", str(facts["valid"]))
    t.add_row("test", str(facts["test"]))
    if "train_mean" in facts:
        t.add_row("train mean (scaled)", ", ".join(f"{v:.4f}" for v in facts["train_mean"][:8]))
        t.add_row("train std (scaled)", ", ".join(f"{v:.4f}" for v in facts["train_std"][:8]))
    con.print(t)
    counts = Table(title="samples per class")
    counts.add_column("class")
    for part in parts:
        counts.add_column(part.name, justify="right")
    for k, c in enumerate(ds.classes):
        counts.add_row(f"{k} {c}" if c != str(k) else c, *(f"{p[k]:,}" for p in per))
    counts.add_row("total", *(f"{len(p):,}" for p in parts))
    con.print(counts)


@data.command("fetch")
@click.argument("name")
def fetch_cmd(name: str) -> None:
    """Download named dataset NAME into the cache (if it is not already on the search path)."""
    from ..data.cache import cache_dir
    from ..data.download import fetch_named
    from ..data.registry import DATASETS, mirrors_for, url_env_var
    from ..data.search import find_named
    if name not in DATASETS or DATASETS[name].kind == "embedded":
        downloadable = [n for n, d in DATASETS.items() if d.download_files]
        raise DataError(f"'{name}' cannot be fetched; choose one of {', '.join(downloadable)}")
    con = console()
    found = find_named(name)
    if found:
        con.print(f"{name} is already available at {found.path}")
        return
    try:
        folder = fetch_named(name, say=lambda m: con.print(m))
    except DataError as e:
        raise DataError(f"cannot fetch {name}: {e}. Sources: {', '.join(mirrors_for(name))} "
                        f"(override with {url_env_var(name)})") from None
    con.print(f"{name} is in {folder} (cache: {cache_dir()})")
