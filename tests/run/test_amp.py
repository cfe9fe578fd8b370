"""The forward-pass options (run.amp, run.channels_last): bf16 autocast gives float32 M close to
the float32 one and is accepted only for solvers that need nothing but M; channels-last images
give the same numbers with M laid out as θ."""

import pytest
import torch

from ocdl import Model
from ocdl.api import solve
from ocdl.errors import ConfigError
from ocdl.models import model_path
from ocdl.run.device import configure_forward
from ocdl.run.options import run_options
from ocdl.solvers import make_solver

MODEL = model_path("quickstart")


def conv_net(control: str):
    m = Model(f"amp-{control}", input=(3, 8, 8))
    m.conv2d(8, 3, padding=1, bias=False, control=control); m.batchnorm(); m.relu()
    m.maxpool(2); m.flatten()
    m.dense(16, bias=False, control=control); m.batchnorm(); m.relu()
    m.dense(4, bias=False, control=control); m.batchnorm()
    m.terminal("squared_hinge")
    return m


def test_bf16_forward_gives_float32_M_close_to_the_float32_one():
    system = conv_net("ternary").compile(seed=0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 8, 8, generator=g)
    y = torch.randint(0, 4, (64,), generator=g)
    st = system.forward(x, update_stats=False)
    ref = system.costates(st, y, need_p=False)
    system.autocast = torch.bfloat16
    st16 = system.forward(x, update_stats=False)
    c = system.costates(st16, y, need_p=False)
    assert st16.x[1].dtype == torch.bfloat16                  # the conv ran in bfloat16
    assert system.predict(x).dtype == torch.float32
    assert c.loss.dtype == torch.float32 and c.J.dtype == torch.float32
    assert float(c.loss) == pytest.approx(float(ref.loss), rel=2e-2)
    for k, M in c.M.items():
        assert M.dtype == torch.float32, k
        cos = torch.nn.functional.cosine_similarity(M.flatten(), ref.M[k].flatten(), dim=0)
        assert float(cos) > 0.98, (k, float(cos))
    # the sign of M, all that a binary closed form reads, agrees on nearly every entry
    big = max(c.M, key=lambda k: c.M[k].numel())
    agree = (torch.sign(c.M[big]) == torch.sign(ref.M[big])).float().mean()
    assert float(agree) > 0.95


def test_without_amp_an_outer_autocast_stays_in_force():
    system = conv_net("real").compile(seed=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        st = system.forward(torch.randn(8, 3, 8, 8))
    assert st.x[1].dtype == torch.bfloat16


@pytest.mark.parametrize("control,solver,over,unsafe", [
    ("ternary", "emsa-ternary", {}, None),
    ("binary", "binaryconnect", {}, None),
    ("real", "adam", {}, None),
    ("ternary", "msa", {}, None),
    ("real", "emsa", {}, "augmented Hamiltonian"),
    ("real", "emsa", {"continuous": "adam"}, None),
    ("ternary", "emsa-ternary", {"adaptive_rho": True}, "adaptive_rho"),
    ("real", "msa", {"inner_steps": 3}, "inner steps"),
    ("real", "msa", {"inner_steps": 1}, None),
])
def test_amp_is_refused_for_solvers_that_evaluate_hamiltonians(control, solver, over, unsafe):
    system = conv_net(control).compile(seed=0)
    options = run_options(settings={"amp": "bf16"}, device="cpu")
    s = make_solver(solver, over)
    if unsafe is None:
        configure_forward(options, system, s)
        assert system.autocast == torch.bfloat16
    else:
        with pytest.raises(ConfigError, match=f"run.amp=bf16 is not safe .*{unsafe}.*run.amp=off"):
            configure_forward(options, system, s)
        assert system.autocast is None


def test_amp_option_is_validated():
    assert run_options(device="cpu").amp == "off"
    with pytest.raises(ConfigError, match="amp must be one of off, bf16"):
        run_options(settings={"amp": "fp16"}, device="cpu")


def test_a_bf16_run_trains_like_a_float32_run(tmp_path):
    """The quickstart net (embedded MNIST subset) for 3 epochs: same accuracy to a few points,
    and the mode is kept by a resumed run (it is in the config)."""
    ov = {"data.limit": 1500, "run.device": "cpu"}
    ref = solve(MODEL, "emsa-ternary", epochs=3, out=tmp_path / "f32", overrides=ov)
    amp = solve(MODEL, "emsa-ternary", epochs=2, out=tmp_path / "bf16",
                overrides={**ov, "run.amp": "bf16"})
    amp = solve(resume=tmp_path / "bf16", epochs=3)
    assert amp.config["run"]["amp"] == "bf16"
    assert ref.final_test_acc > 0.8
    assert abs(amp.final_test_acc - ref.final_test_acc) < 0.03
    assert amp.system.autocast == torch.bfloat16


def test_channels_last_gives_the_same_states_and_M_laid_out_as_theta():
    """run.channels_last: the same numbers (float reassociation aside), image states in
    channels-last strides, M in θ's own layout (the flat views of the CPU update need it)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 3, 8, 8, generator=g)
    y = torch.randint(0, 4, (32,), generator=g)
    res = []
    for cl in (False, True):
        system = conv_net("ternary").compile(seed=0)
        configure_forward(run_options(settings={"channels_last": cl}, device="cpu"), system,
                          make_solver("emsa-ternary"))
        st = system.forward(x, update_stats=False)
        if cl:  # autograd's own gradient of the conv weight comes in the input's layout
            conv = next(k for k, v in system.theta.items() if v.dim() == 4)
            J, _ = system.objective(st, y)
            raw, = torch.autograd.grad(J, [system.theta[conv]], retain_graph=True)
            assert raw.stride() != system.theta[conv].stride()
        c = system.costates(st, y, need_p=False)
        assert st.x[1].is_contiguous(memory_format=torch.channels_last) == cl
        for k, M in c.M.items():
            assert M.stride() == system.theta[k].stride(), k
        s = make_solver("emsa-ternary", {"rho": 0.0, "mbar_init": 0.0})
        state = s.init(system)
        for _ in range(3):
            state, m = s.step(system, state, x, y)
        res.append((c, {k: v.detach().clone() for k, v in system.theta.items()}))
    (c0, th0), (c1, th1) = res
    assert float(c1.loss) == pytest.approx(float(c0.loss), rel=1e-5)
    for k in c0.M:
        torch.testing.assert_close(c1.M[k], c0.M[k], rtol=1e-4, atol=1e-6)
    for k in th0:  # three E-MSA steps: same controls
        torch.testing.assert_close(th1[k], th0[k], rtol=1e-4, atol=1e-5)
