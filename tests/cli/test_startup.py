"""``ocdl --help`` starts without torch: the command line and ``import ocdl`` load torch,
sympy, PIL and matplotlib only when a command needs them (benchmarks/startup.py times it)."""
import subprocess
import sys

HEAVY = ("torch", "sympy", "PIL", "matplotlib", "networkx", "casadi", "numpy")


def loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_help_of_every_command_loads_no_heavy_module():
    code = ("from click.testing import CliRunner\nfrom ocdl.cli import cli\n"
            "r = CliRunner().invoke(cli, ['--help'])\nassert r.exit_code == 0, r.output\n"
            "for name in cli.commands:\n"
            "    r = CliRunner().invoke(cli, [name, '--help'])\n"
            "    assert r.exit_code == 0, (name, r.output)")
    assert loaded_after(code) == []


def test_import_ocdl_is_light_and_its_names_load_on_use():
    assert loaded_after("import ocdl") == []
    assert "torch" in loaded_after("import ocdl\nocdl.Ternary")
