"""Downloading a missing named dataset into the cache, checked and written atomically.

Each file is streamed to a temporary file in the destination folder, its SHA-256 checked (for
gzip'd IDX files: of the decompressed content, since mirrors re-gzip), fsync'd and renamed into
place. A corrupt file, a dropped connection or an interruption leaves nothing under the final
name. ``OCDL_OFFLINE=1`` disables downloading.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import socket
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path

from ..errors import DataError
from .cache import atomic_write, cache_dir
from .registry import DATASETS, mirrors_for, url_env_var

USER_AGENT = "ocdl-data/0.1 (+python urllib)"
TIMEOUT_S = 30.0
_CHUNK = 1 << 20


class _Offline(Exception):
    """The server could not be reached at all (no network, DNS failure, refused)."""


def offline() -> bool:
    """True when ``OCDL_OFFLINE`` is set to a true value."""
    return os.environ.get("OCDL_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _say(msg: str) -> None:
    print(f"ocdl: {msg}", file=sys.stderr, flush=True)


def download_file(url: str, dest: Path, *, sha256: str, gunzip: bool = False,
                  timeout: float = TIMEOUT_S) -> Path:
    """Download ``url`` to ``dest`` atomically, checking ``sha256`` (of the gzip-decompressed
    content when ``gunzip``). Raises :class:`DataError` on a bad or incomplete download; nothing
    is left at ``dest`` (nor a temporary file) unless the check passed."""
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with atomic_write(dest) as out:
            digest = hashlib.sha256()
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    length = resp.headers.get("Content-Length")
                    got = 0
                    while True:
                        chunk = resp.read(_CHUNK)
                        if not chunk:
                            break
                        got += len(chunk)
                        out.write(chunk)
                        if not gunzip:
                            digest.update(chunk)
            except urllib.error.HTTPError as e:
                raise DataError(f"{url}: HTTP {e.code} {e.reason}") from None
            except urllib.error.URLError as e:
                reason = e.reason
                if isinstance(reason, OSError) and not isinstance(reason, TimeoutError):
                    raise _Offline(f"{url}: {reason}") from None
                raise DataError(f"{url}: {reason}") from None
            except (http.client.IncompleteRead, ConnectionError, socket.timeout,
                    http.client.HTTPException) as e:
                raise DataError(f"{url}: connection dropped during the download "
                                f"({type(e).__name__}: {e})") from None
            if length is not None and got != int(length):
                raise DataError(f"{url}: connection dropped after {got} of {length} bytes")
            if gunzip:
                out.flush()
                out.seek(0)
                try:
                    data = gzip.decompress(out.read())
                except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as e:
                    raise DataError(f"{url}: downloaded file is not a complete gzip file ({e})") \
                        from None
                digest.update(data)
            if digest.hexdigest() != sha256:
                raise DataError(f"{url}: SHA-256 {digest.hexdigest()[:16]}… does not match the "
                                f"expected {sha256[:16]}… (corrupt or wrong file)")
    except OSError as e:
        raise DataError(f"cannot write {dest}: {e.strerror or e}") from None
    return dest


def fetch_named(name: str, *, say: Callable[[str], None] | None = _say,
                timeout: float = TIMEOUT_S) -> Path:
    """Download the missing files of named dataset ``name`` into ``<cache>/<name>/`` and return
    that folder. Mirrors are tried in order for each file. Raises :class:`DataError` (with every
    mirror's failure) if a file cannot be had."""
    ds = DATASETS[name]
    if not ds.download_files:
        raise DataError(f"dataset '{name}' cannot be downloaded")
    if offline():
        raise DataError("downloading is disabled (OCDL_OFFLINE is set)")
    bases = mirrors_for(name)
    if not bases:
        raise DataError(f"no download source for '{name}' (set {url_env_var(name)})")
    folder = cache_dir() / name
    for fname in ds.download_files:
        dest = folder / fname
        if dest.is_file():
            continue
        gunzip = ds.kind == "idx"
        sha = ds.sha256[fname[:-3] if gunzip else fname]
        errors: list[str] = []
        all_offline = True
        for base in bases:
            url = base + fname
            if say:
                say(f"downloading {url} -> {dest}")
            try:
                download_file(url, dest, sha256=sha, gunzip=gunzip, timeout=timeout)
                break
            except _Offline as e:
                errors.append(f"{e} (unreachable)")
            except DataError as e:
                all_offline = False
                errors.append(str(e))
        else:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: leave nothing behind
            what = "no network" if all_offline else "download failed"
            raise DataError(f"{what}: " + "; ".join(errors))
    return folder
