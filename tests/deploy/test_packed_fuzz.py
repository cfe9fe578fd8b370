"""A damaged, truncated or foreign packed file raises PackedFileError (one line) and nothing
else, without a huge allocation: real files mutated and truncated, and random bytes."""
import json
import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ocdl.deploy import load
from ocdl.errors import PackedFileError

FUZZ = settings(max_examples=80, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
#: the most a load of a damaged quickstart file may allocate in numpy/python (bytes)
PEAK = 64 << 20


def _load_bytes(tmp_path, data: bytes) -> None:
    path = tmp_path / "f.ocdl"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        load(path)
    except PackedFileError as e:
        assert "\n" not in str(e) and str(path) in str(e)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < PEAK


@FUZZ
@given(data=st.data())
def test_mutated_packed_file(packed_file, tmp_path_factory, data):
    raw = bytearray(packed_file.read_bytes())
    header_end = 16 + struct.unpack_from("<I", raw, 12)[0]
    for _ in range(data.draw(st.integers(1, 4))):
        # half the bytes in the preamble and header (the table, the spec), half anywhere
        end = data.draw(st.sampled_from([header_end, len(raw)]))
        i = data.draw(st.integers(0, end - 1))
        raw[i] = data.draw(st.integers(0, 255))
    _load_bytes(tmp_path_factory.mktemp("m"), bytes(raw))


@FUZZ
@given(data=st.data())
def test_truncated_packed_file(packed_file, tmp_path_factory, data):
    raw = packed_file.read_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(PackedFileError):
        load_path = tmp_path_factory.mktemp("t") / "f.ocdl"
        load_path.write_bytes(raw[:cut])
        load(load_path)


@FUZZ
@given(st.binary(max_size=256))
def test_random_bytes(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("r") / "f.ocdl"
    path.write_bytes(blob)
    with pytest.raises(PackedFileError):
        load(path)


def _rewrite_header(raw: bytes, change) -> bytes:
    hlen = struct.unpack_from("<I", raw, 12)[0]
    header = json.loads(raw[16:16 + hlen])
    change(header)
    new = json.dumps(header).encode()
    return raw[:8] + struct.pack("<II", 1, len(new)) + new + raw[16 + hlen:]


@pytest.mark.parametrize("change, says", [
    (lambda h: h["tensors"][0].update(shape=[1 << 39, 1 << 39]), "bytes, its shape"),
    (lambda h: h["tensors"][0].update(offset=1 << 60), "outside the file"),
    (lambda h: h["tensors"][0].update(levels=[1.0, 0.0, -1.0]), "levels"),
    (lambda h: h.update(spec="ocdl: 1\nname: x\n"), "spec does not compile"),
    (lambda h: h["tensors"].pop(), "do not match its spec"),
    (lambda h: h["tensors"].append(dict(h["tensors"][0])), "repeated"),
])
def test_forged_headers_are_refused_before_any_allocation(packed_file, tmp_path, change, says):
    path = tmp_path / "f.ocdl"
    path.write_bytes(_rewrite_header(packed_file.read_bytes(), change))
    with pytest.raises(PackedFileError, match=says):
        load(path)


def test_sparse_count_claiming_a_huge_tensor_is_refused(packed_file, tmp_path):
    def huge_sparse(h):
        e = h["tensors"][0]
        e.update(shape=[1 << 20, 1 << 20], encoding="sparse", count=0, index_bytes=8, bits=1,
                 length=0)
    path = tmp_path / "f.ocdl"
    path.write_bytes(_rewrite_header(packed_file.read_bytes(), huge_sparse))
    _load_bytes(tmp_path, path.read_bytes())
    with pytest.raises(PackedFileError, match="shape"):
        load(path)


def test_other_version_and_foreign_file(packed_file, tmp_path):
    raw = packed_file.read_bytes()
    path = tmp_path / "v.ocdl"
    path.write_bytes(raw[:8] + struct.pack("<I", 2) + raw[12:])
    with pytest.raises(PackedFileError, match="version 2"):
        load(path)
    path.write_bytes(b"PK\x03\x04" + raw[4:])
    with pytest.raises(PackedFileError, match="not an ocdl packed file"):
        load(path)
