"""benchmarks/optim_step.py runs and prints its table (its numbers are timings, read by eye)."""
from tests.benchmarks.test_benchmark_scripts import bench, table


def test_optim_step_times_every_optimizer_against_torch_adam():
    r = bench("optim_step.py", "--small", "--iters", "1", "--rounds", "1", "--warmup", "1",
              "--threads", "1")
    assert r.returncode == 0, r.stderr
    rows = table(r.stdout)
    assert set(rows) == {"torch Adam", "torch Adam (fused)", "EMSA ternary", "EMSA binary", "Bop", "BinaryConnect",
                         "TWN"}
    assert rows["torch Adam"][1] == "1.00"  # the reference's ratio to itself


def test_optim_step_refuses_an_unknown_variant_and_names_the_choices():
    r = bench("optim_step.py", "--small", "--only", "EMSA quaternary")
    assert r.returncode == 2
    assert "unknown variant(s) ['EMSA quaternary']" in r.stderr and "'EMSA ternary'" in r.stderr
