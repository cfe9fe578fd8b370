"""``ocdl check``: ocdl and casadi agree on every classical model; the checker fails on a wrong
solution."""
import pytest
from click.testing import CliRunner

pytest.importorskip("casadi")

from ocdl.check import check  # noqa: E402
from ocdl.cli import cli  # noqa: E402
from ocdl.models import model_path  # noqa: E402

# model → ocdl iterations enough for a gap below 1e-4 (the check's default tolerance)
MODELS = {"lqr-scalar": 40, "lqr-2d": 60, "double-integrator": 60, "van-der-pol": 40,
          "ternary-control": 20}


@pytest.mark.parametrize("model,iters", MODELS.items())
def test_ocdl_and_casadi_agree(model, iters):
    r = check(model_path(model), iters=iters)
    assert r.ok, (r.gap, r.ocdl.J, r.casadi.J)
    assert r.grad_diff < 1e-9 and r.costate_diff < 1e-9  # ocdl's M and p = casadi's AD
    assert r.casadi.costate_residual < 1e-9 and r.ocdl.costate_residual < 1e-9
    if model != "ternary-control":  # real/box: both satisfy the maximum condition
        assert r.casadi.hamiltonian_gap < 1e-6 and r.ocdl.hamiltonian_gap < 1e-3


def test_cli_passes_and_fails():
    model = str(model_path("lqr-scalar"))
    r = CliRunner().invoke(cli, ["check", model, "--iters", "40"])
    assert r.exit_code == 0, r.output
    assert "check passed" in r.output and "objective J" in r.output
    r = CliRunner().invoke(cli, ["check", model, "--iters", "0"])
    assert r.exit_code == 1
    assert "check failed: objective gap" in r.output
    r = CliRunner().invoke(cli, ["check", model, "--iters", "40", "--perturb", "0.01"])
    assert r.exit_code == 1 and "check failed" in r.output


def test_explain_prints_hamiltonian_and_costates():
    model = str(model_path("lqr-scalar"))
    r = CliRunner().invoke(cli, ["explain", model])
    assert r.exit_code == 0, r.output
    assert "H_t = p_x*(a*x + b*u) - (q*x**2 + r*u**2)/S" in r.output
    assert "p_x(t) = a*p_x - 2*q*x/S" in r.output
    assert "dH_t/du = b*p_x - 2*r*u/S = 0" in r.output
    r = CliRunner().invoke(cli, ["explain", model, "--latex"])
    assert r.exit_code == 0
    assert r"\frac{\partial H_t}{\partial u} = b p_{x} - \frac{2 r u}{S}" in r.output


def test_missing_casadi_is_a_clear_error(monkeypatch):
    import builtins

    from ocdl.check.casadi_export import require_casadi
    from ocdl.errors import OcdlError
    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "casadi":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(OcdlError, match=r"pip install 'ocdl\[casadi\]'"):
        require_casadi()
