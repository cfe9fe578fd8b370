"""The packed format: exact round trip of a trained ternary run, the per-tensor encodings
(k levels at ⌈log2 k⌉ bits, sparse where smaller, float32 or float16) and the sizes."""
import json
import struct

import numpy as np
import pytest
import torch

from ocdl.api import export, load_trained
from ocdl.deploy import load
from ocdl.deploy.packed_codec import (code_bits, pack_codes, unpack_codes)
from ocdl.deploy.packed_read import read_packed
from ocdl.deploy.packed_write import encode


def test_packed_module_equals_load_trained_exactly(run_dir, packed_file, test_batch):
    want = load_trained(run_dir, device="cpu")
    system = load(packed_file)
    with torch.no_grad():
        assert torch.equal(system.to_module()(test_batch), want(test_batch))
    for name, t in want.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(system.to_module().state_dict()[name], t), name


def test_header_holds_the_spec_and_ternary_controls_take_two_bits_or_less(run_dir,
                                                                           packed_file):
    p = read_packed(packed_file)
    assert "name: quickstart" in p.spec_text and p.controls == "final"
    table = {e["name"]: e for e in p.tensors}
    fc1 = table["fc1.weight"]
    assert fc1["kind"] == "control" and fc1["shape"] == [256, 784]
    assert fc1["encoding"] in ("levels", "sparse") and fc1["levels"] == [-1.0, 0.0, 1.0]
    assert fc1["length"] <= 256 * 784 * 2 // 8
    assert table["bn1.running_mean"]["encoding"] == "float32"
    size = packed_file.stat().st_size
    float32 = sum(t.numel() * 4 for t in load_trained(run_dir, device="cpu")
                  .state_dict().values() if t.is_floating_point())
    assert size < float32 / 12  # 2 bits of 32 for the weights, plus the header


def test_float16_halves_the_real_tensors(run_dir, tmp_path, test_batch):
    path = export(run_dir, format="packed", out=tmp_path / "h.ocdl", float16=True)
    table = {e["name"]: e for e in read_packed(path).tensors}
    assert table["bn1.running_var"]["encoding"] == "float16"
    assert table["bn1.running_var"]["length"] == 256 * 2
    out = load(path).to_module()(test_batch)
    want = load_trained(run_dir, device="cpu")(test_batch)
    assert (out - want).abs().max() <= 5e-3 * want.abs().max()  # float16: 11-bit mantissa
    assert (out.argmax(1) == want.argmax(1)).float().mean() >= 0.95


@pytest.mark.parametrize("k", [2, 3, 4, 5, 9, 256])
def test_codes_of_k_levels_round_trip_at_ceil_log2_k_bits(k):
    codes = np.random.default_rng(k).integers(0, k, size=1001)
    bits = code_bits(k)
    assert bits == int(np.ceil(np.log2(k)))
    data = pack_codes(codes, bits)
    assert len(data) == (1001 * bits + 7) // 8
    assert np.array_equal(unpack_codes(data, 1001, bits), codes)


def test_encoding_picks_sparse_when_smaller_and_records_it():
    w = np.zeros((64, 100), dtype=np.float32)
    w[3, 7], w[60, 99] = 1.0, -1.0
    entry, payload = encode("w", "control", w, (-1.0, 0.0, 1.0), "float32")
    assert entry["encoding"] == "sparse" and entry["count"] == 2
    # gaps: position 307, then 6099 - 307 = 5792 → two bytes each; one sign bit each
    assert entry["index_bytes"] == 2 and entry["bits"] == 1
    assert len(payload) == 2 * 2 + 1
    assert np.frombuffer(payload[:4], "<u2").tolist() == [307, 5792]
    from ocdl.deploy.packed_read import Packed, decode
    entry.update(offset=0, length=len(payload))
    assert np.array_equal(decode(Packed(None, "", "", "", [entry], memoryview(payload)),
                                 entry), w)
    dense = np.sign(np.random.default_rng(0).standard_normal((64, 100))).astype(np.float32)
    entry, payload = encode("w", "control", dense, (-1.0, 1.0), "float32")
    assert entry["encoding"] == "levels" and entry["bits"] == 1 and len(payload) == 800


def test_levels_five_take_three_bits_and_decode_exactly():
    from ocdl.deploy.packed_read import Packed, decode
    lv = (-1.0, -0.5, 0.0, 0.5, 1.0)
    w = np.asarray(lv, dtype=np.float32)[np.random.default_rng(1).integers(0, 5, (7, 11))]
    entry, payload = encode("w", "control", w, lv, "float32")
    assert entry["encoding"] == "levels" and entry["bits"] == 3
    entry.update(offset=0, length=len(payload))
    p = Packed(None, "", "", "", [entry], memoryview(payload))
    assert np.array_equal(decode(p, entry), w)


def test_controls_outside_their_levels_are_kept_in_float32():
    w = np.array([0.3, -1.0], dtype=np.float32)
    entry, payload = encode("w", "control", w, (-1.0, 0.0, 1.0), "float32")
    assert entry["encoding"] == "float32" and len(payload) == 8


def test_preamble_is_magic_version_and_header_length(packed_file):
    raw = packed_file.read_bytes()
    assert raw[:8] == b"OCDLPACK"
    version, hlen = struct.unpack_from("<II", raw, 8)
    assert version == 1
    assert json.loads(raw[16:16 + hlen])["format"] == "ocdl-packed"


@pytest.mark.parametrize("name", ["CONV", "RESIDUAL"])
def test_conv_and_dag_networks_round_trip_exactly(name, tmp_path):
    """Binary and ternary conv kernels, pools, a residual DAG with merges: the packed file's
    System computes what the original does, to the bit."""
    from pathlib import Path

    from ocdl.deploy.packed_write import write_packed
    from ocdl.deploy.source import Trained
    from ocdl.modelspec import loads_spec
    from tests.test_to_torch import CONV, RESIDUAL
    text = {"CONV": CONV, "RESIDUAL": RESIDUAL}[name]
    system = loads_spec(text).compile(seed=3)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for st in system.all_stages():
            if "running_mean" in st.buffers:
                st.buffers["running_mean"].normal_(generator=g)
                st.buffers["running_var"].uniform_(0.5, 2.0, generator=g)
    path = write_packed(Trained(system, system.spec.to_yaml(), Path("x"), "final"),
                        tmp_path / "n.ocdl")
    x = torch.randn(5, *system.input_shape, generator=g)
    with torch.no_grad():
        assert torch.equal(load(path).to_module()(x), system.to_module()(x))
    kinds = {e["name"]: e["encoding"] for e in read_packed(path).tensors}
    if name == "CONV":
        assert kinds["conv-1.weight"] == "levels" and kinds["conv-1.bias"] == "float32"
