"""BatchNorm folded into the layer before it (s ⊙ (W x) + c), and inference with the discrete
weights kept packed (ocdl.deploy.load_packed_module): the same outputs as the unpacked float
module, and the resident weight memory against float32."""
from pathlib import Path

import pytest
import torch

from ocdl.api import load_system, load_trained
from ocdl.deploy import fold_batchnorm, load, load_packed_module
from ocdl.deploy.fold import fold_pairs
from ocdl.deploy.packed_kernels import KERNELS, nbytes
from ocdl.deploy.packed_module import choices
from ocdl.deploy.packed_write import write_packed
from ocdl.deploy.source import Trained
from ocdl.errors import DeployError
from ocdl.modelspec import loads_spec
from tests.test_to_torch import CONV, RESIDUAL, compiled, inputs

BINARY = """
ocdl: 1
name: binary-mlp
input: [12]
stages:
  - {name: fc1, op: dense, units: 30, control: binary}
  - {name: bn1, op: batchnorm, eps: 1.0e-4}
  - {name: relu1, op: relu}
  - {name: fc2, op: dense, units: 20, bias: false, control: binary}
  - {name: bn2, op: batchnorm, eps: 1.0e-4}
  - {name: tanh, op: tanh}
  - {name: fc3, op: dense, units: 5, control: binary}
cost: {terminal: cross_entropy}
"""


def exported(system, path: Path) -> Path:
    return write_packed(Trained(system, system.spec.to_yaml(), Path("x"), "final"), path)


def random_stats(system, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for st in system.all_stages():
            if "running_mean" in st.buffers:
                st.buffers["running_mean"].normal_(generator=g)
                st.buffers["running_var"].uniform_(0.5, 2.0, generator=g)
            for param in ("weight", "bias"):
                if st.op.name == "batchnorm" and param in st.controls:
                    system.theta[st.controls[param]].uniform_(0.5, 1.5, generator=g)
    return system


def close(out: torch.Tensor, want: torch.Tensor, rtol: float = 1e-5) -> bool:
    return bool((out - want).abs().max() <= rtol * want.abs().max().clamp_min(1.0))


@pytest.mark.parametrize("text", [CONV, RESIDUAL, BINARY, "LEVELS"])
def test_folded_batchnorm_equals_the_unfolded_module_in_float64(text):
    system = compiled(LEVELS if text == "LEVELS" else text)  # LEVELS: affine: false too
    x = inputs(system, 9)
    with torch.no_grad():
        want, out = system.to_module()(x), fold_batchnorm(system)(x)
    assert out.dtype == torch.float64
    assert (out - want).abs().max() <= 1e-10 * want.abs().max().clamp_min(1.0)


def test_fold_pairs_take_dense_and_conv_layers_read_only_by_their_batchnorm():
    assert {k: v.name for k, v in fold_pairs(compiled(CONV)).items()} == {"conv-1": "bn1",
                                                                          "fc": "bn2"}
    assert {k: v.name for k, v in fold_pairs(compiled(RESIDUAL)).items()} == {"a1": "abn"}


def test_folded_quickstart_in_float32_has_the_same_argmax_on_the_test_split(run_dir,
                                                                            packed_file):
    system = load(packed_file)
    unfolded, folded = system.to_module(), fold_batchnorm(system)
    assert isinstance(folded.bn1, torch.nn.Identity) and folded.fc1.inner.weight.unique(
        ).tolist() == [-1.0, 0.0, 1.0]  # W keeps its exact levels
    _, feeders = load_system(run_dir, device="cpu")
    n = 0
    with torch.no_grad():
        for x, _ in feeders.test.epoch(0):
            want, out = unfolded(x), folded(x)
            assert torch.equal(out.argmax(1), want.argmax(1))
            assert close(out, want)
            n += len(x)
    assert n >= 100


@pytest.mark.parametrize("kernel", ["auto", *KERNELS])
def test_packed_quickstart_equals_the_unpacked_module(run_dir, packed_file, kernel):
    want_module = load_trained(run_dir, device="cpu")
    module = load_packed_module(packed_file, kernel=kernel)
    _, feeders = load_system(run_dir, device="cpu")
    with torch.no_grad():
        for x, _ in feeders.test.epoch(0):
            want, out = want_module(x), module(x)
            assert torch.equal(out.argmax(1), want.argmax(1))
            assert close(out, want)
    picked = choices(module)
    assert set(picked) == {"fc1", "fc2", "fc3"}
    if kernel in ("lut", "pn"):
        assert set(picked.values()) == {kernel}
    assert f"kernel={picked['fc1']}" in repr(module)


def test_load_packed_true_is_the_packed_module_and_measures_each_layer(packed_file,
                                                                       test_batch):
    module = load(packed_file, packed=True)
    fc1 = module.fc1
    assert set(fc1.timings) >= {"lut", "pn"} and fc1.kernel.name in fc1.timings
    assert "measured [lut" in repr(module)
    with torch.no_grad():
        assert close(module(test_batch), load(packed_file).to_module()(test_batch))


@pytest.mark.parametrize("text", [BINARY, CONV, RESIDUAL])
@pytest.mark.parametrize("kernel", ["auto", *KERNELS])
def test_packed_binary_conv_and_dag_nets_equal_the_unpacked_module(text, kernel, tmp_path):
    system = random_stats(loads_spec(text).compile(seed=3))
    path = exported(system, tmp_path / "n.ocdl")
    x = torch.randn(6, *system.input_shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = system.to_module()(x)
        out = load_packed_module(path, kernel=kernel)(x)
    assert torch.equal(out.argmax(1), want.argmax(1))
    assert close(out, want)


def test_rows_are_unpacked_in_blocks_with_the_same_result(packed_file, test_batch):
    whole = load_packed_module(packed_file, kernel="lut")
    blocked = load_packed_module(packed_file, kernel="lut", block_bytes=784 * 4 * 10)
    assert blocked.fc1.block_rows == 10 and whole.fc1.block_rows == 256
    with torch.no_grad():
        assert close(blocked(test_batch), whole(test_batch), 1e-6)


def test_an_unknown_kernel_is_one_line(packed_file):
    with pytest.raises(DeployError, match="unknown kernel 'gemm'; choose auto or one of lut"):
        load_packed_module(packed_file, kernel="gemm")


@pytest.mark.parametrize("name,control,bound", [
    ("quickstart", "ternary", 14), ("quickstart", "binary", 28),
    ("mnist-fc-ternary", "ternary", 14), ("mnist-fc-binary", "binary", 28)])
def test_resident_weight_memory_against_float32(name, control, bound, tmp_path):
    """Parameters and buffers, BatchNorm vectors counted: at most 1/14 of float32 for
    ternary weights, 1/28 for binary ones."""
    from ocdl.run.lifecycle import load_model
    spec = load_model(name)
    if control not in spec.to_yaml():
        spec = loads_spec(spec.to_yaml().replace("ternary", control))
    system = spec.compile(seed=0)
    module = load_packed_module(exported(system, tmp_path / "m.ocdl"), kernel="lut")
    assert nbytes(system.to_module()) / nbytes(module) >= bound


LEVELS = """
ocdl: 1
name: levels-mlp
input: [10]
stages:
  - {name: fc1, op: dense, units: 9, control: {set: levels, values: [0, 2]}}
  - {name: bn1, op: batchnorm}
  - {name: relu1, op: relu}
  - {name: fc2, op: dense, units: 7, bias: false, control: {set: levels, values: [-0.5, 0, 1.5]}}
  - {name: fc3, op: dense, units: 6, control: {set: levels, values: [-1, -0.5, 0, 0.5, 1]}}
  - {name: bn3, op: batchnorm, affine: false}
  - {name: c, op: dense, units: 4, control: {set: levels, values: [-2, -1, 0.25, 3]}}
cost: {terminal: cross_entropy}
"""


@pytest.mark.parametrize("kernel", ["auto", *KERNELS])
def test_any_levels_pack_at_their_code_width_and_compute_the_same(kernel, tmp_path):
    """{0, 2} by the sign trick with a = 0, {−0.5, 0, 1.5} by P and N with unequal levels,
    5 levels at 4 bits a code, 4 levels without 0 at 2 bits."""
    system = random_stats(loads_spec(LEVELS).compile(seed=4))
    module = load_packed_module(exported(system, tmp_path / "l.ocdl"), kernel=kernel)
    x = torch.randn(8, 10, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert close(module(x), system.to_module()(x))
    assert module.fc3.kernel.name == "csr" or module.fc3.kernel.w == 4
    assert module.c.kernel.name == "lut" and module.c.kernel.plane0.shape == (4, 2)  # 6 × 2 bits
