"""The search path, the 'not found' error, and downloads from a loopback HTTP server."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from ocdl.data import load_dataset, registry, search
from ocdl.data.download import download_file, fetch_named
from ocdl.data.search import find_named
from ocdl.errors import DataError

IDX_SHA_KEYS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")

# ---------------------------------------------------------------- search path


def test_ocdl_data_named_subfolder_and_order(make_idx, patch_named, monkeypatch, tmp_path):
    _, _, shas = make_idx(folder=tmp_path / "a" / "mnist", seed=1)
    make_idx(folder=tmp_path / "b" / "mnist", seed=1)
    patch_named("mnist", sha256=shas, default_split=(50, 10))
    monkeypatch.setenv("OCDL_DATA", f"{tmp_path / 'missing'}:{tmp_path / 'a'}:{tmp_path / 'b'}")
    ds = load_dataset("mnist")
    assert ds.source == str(tmp_path / "a" / "mnist")
    assert [len(s) for s in ds] == [50, 10, 20]


def test_ocdl_data_direct_files_identified_by_labels(make_idx, patch_named, monkeypatch, tmp_path):
    folder, _, shas = make_idx(folder=tmp_path / "flat")
    patch_named("mnist", sha256=shas)
    monkeypatch.setenv("OCDL_DATA", str(folder))
    assert find_named("mnist").path == folder
    # the same files are not Fashion-MNIST: their labels do not have its checksum
    assert find_named("fashion-mnist") is None


def test_debian_system_folder(make_idx, patch_named, monkeypatch, tmp_path):
    _, _, shas = make_idx(folder=tmp_path / "usr-share-datasets" / "fashion-mnist")
    patch_named("fashion-mnist", sha256=shas, default_split=(55, 5))
    monkeypatch.setattr(search, "SYSTEM_DIRS", [tmp_path / "usr-share-datasets"])
    ds = load_dataset("fashion-mnist")
    assert ds.classes[0] == "T-shirt/top" and len(ds.train) == 55


def test_torchvision_style_folder(make_idx, patch_named, monkeypatch, tmp_path):
    _, _, shas = make_idx(folder=tmp_path / "root" / "MNIST" / "raw")
    patch_named("mnist", sha256=shas)
    monkeypatch.setenv("OCDL_DATA", str(tmp_path / "root"))
    assert find_named("mnist").format == "idx"


def test_missing_offline_message(monkeypatch, tmp_path, isolated):
    monkeypatch.setenv("OCDL_DATA", str(tmp_path / "nothing"))
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist")
    msg = str(e.value)
    assert "\n" not in msg
    assert str(tmp_path / "nothing" / "fashion-mnist") in msg
    assert str(isolated / "fashion-mnist") in msg
    assert "OCDL_DATA" in msg and "apt install dataset-fashion-mnist" in msg
    assert "OCDL_OFFLINE" in msg
    with pytest.raises(DataError) as e:
        load_dataset("cifar-10")
    assert "apt install" not in str(e.value)


def test_download_off_by_argument(monkeypatch):
    monkeypatch.delenv("OCDL_OFFLINE")
    with pytest.raises(DataError, match="downloading was turned off"):
        load_dataset("mnist", download=False)


# ---------------------------------------------------------------- loopback server


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    drop: set[str] = set()
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server API
        name = self.path.rsplit("/", 1)[-1]
        type(self).hits.append(self.path)
        body = self.files.get(name)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if name in self.drop:  # close mid-body
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    handler = type("H", (_Handler,), {"files": {}, "drop": set(), "hits": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    t.start()
    monkeypatch.delenv("OCDL_OFFLINE")
    try:
        yield handler, f"http://127.0.0.1:{httpd.server_address[1]}/data/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _serve_idx(make_idx, handler, tmp_path, regzip: bool = True):
    folder, arrays, shas = make_idx(folder=tmp_path / "src")
    for p in folder.iterdir():  # a mirror re-gzips: different .gz bytes, same content
        handler.files[p.name] = gzip.compress(gzip.decompress(p.read_bytes()), 1, mtime=123) \
            if regzip else p.read_bytes()
    return arrays, shas


def _leftovers(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*")) if cache.exists() else []


def test_download_named_into_cache(make_idx, patch_named, monkeypatch, server, tmp_path, isolated):
    handler, url = server
    arrays, shas = _serve_idx(make_idx, handler, tmp_path)
    patch_named("mnist", sha256=shas, default_split=(50, 10))
    monkeypatch.setitem(registry.MIRRORS, "mnist", ["http://127.0.0.1:9/dead/", url])
    ds = load_dataset("mnist", say=None)
    assert ds.source == str(isolated / "mnist")
    assert sorted(p.name for p in (isolated / "mnist").iterdir()) == \
        sorted(f + ".gz" for f in IDX_SHA_KEYS)
    assert ds.test.y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    n = len(handler.hits)
    load_dataset("mnist", say=None)  # found in the cache now: no second download
    assert len(handler.hits) == n


def test_download_url_env_override(make_idx, patch_named, monkeypatch, server, tmp_path, isolated):
    handler, url = server
    _, shas = _serve_idx(make_idx, handler, tmp_path)
    patch_named("fashion-mnist", sha256=shas)
    monkeypatch.setitem(registry.MIRRORS, "fashion-mnist", ["http://127.0.0.1:9/never/"])
    monkeypatch.setenv("OCDL_DATA_URL_FASHION_MNIST", url.rstrip("/"))
    assert fetch_named("fashion-mnist", say=None) == isolated / "fashion-mnist"
    assert all(h.startswith("/data/") for h in handler.hits)


def test_download_corrupt_file_leaves_nothing(make_idx, patch_named, monkeypatch, server,
                                             tmp_path, isolated):
    handler, url = server
    _, shas = _serve_idx(make_idx, handler, tmp_path)
    name = "t10k-images-idx3-ubyte.gz"
    content = bytearray(gzip.decompress(handler.files[name]))
    content[500] ^= 0xFF
    handler.files[name] = gzip.compress(bytes(content))
    patch_named("mnist", sha256=shas)
    monkeypatch.setitem(registry.MIRRORS, "mnist", [url])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: SHA-256 .* does not match"):
        load_dataset("mnist", say=None)
    assert not any(p.endswith(name) or p.endswith(".part") for p in _leftovers(isolated))


def test_download_dropped_connection_leaves_nothing(patch_named, monkeypatch, server, isolated):
    handler, url = server
    body = bytes(range(256)) * 4000
    handler.files["cifar-10-python.tar.gz"] = body
    handler.drop.add("cifar-10-python.tar.gz")
    patch_named("cifar-10", sha256={"cifar-10-python.tar.gz": hashlib.sha256(body).hexdigest()})
    monkeypatch.setitem(registry.MIRRORS, "cifar-10", [url])
    with pytest.raises(DataError, match="connection dropped|IncompleteRead"):
        load_dataset("cifar-10", say=None)
    assert _leftovers(isolated) == []


def test_download_cifar_archive(make_cifar, tar_of, patch_named, monkeypatch, server, tmp_path,
                                isolated):
    handler, url = server
    tgz = tar_of(make_cifar(root=tmp_path / "src").parent, tmp_path / "cifar-10-python.tar.gz")
    handler.files[tgz.name] = tgz.read_bytes()
    patch_named("cifar-10", sha256={tgz.name: hashlib.sha256(tgz.read_bytes()).hexdigest()},
                default_split=(90, 10))
    monkeypatch.setitem(registry.MIRRORS, "cifar-10", [url])
    ds = load_dataset("cifar-10", say=None)
    assert ds.info["format"] == "cifar-python-tar" and [len(s) for s in ds] == [90, 10, 20]
    assert (isolated / "cifar-10" / tgz.name).read_bytes() == tgz.read_bytes()


def test_download_unreachable_is_reported(monkeypatch, isolated):
    monkeypatch.delenv("OCDL_OFFLINE")
    monkeypatch.setitem(registry.MIRRORS, "mnist", ["http://127.0.0.1:9/"])
    with pytest.raises(DataError, match=r"not found; looked in .*no network.*127\.0\.0\.1:9"):
        load_dataset("mnist", say=None)
    assert _leftovers(isolated) == []


def test_download_file_http_error(server, tmp_path):
    _, url = server
    with pytest.raises(DataError, match="HTTP 404"):
        download_file(url + "nope", tmp_path / "f", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []
