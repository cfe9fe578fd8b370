"""relax(): discrete sets become real, everything else stays; compare uses it for adam."""
import ocdl
from ocdl import Binary, Levels, Model, Real, Ternary
from ocdl.spec.transform import has_discrete, relax


def test_relax_replaces_only_discrete_sets():
    m = Model("r", input=(3, 4, 4))
    m.conv2d(2, 3, padding=1, control={"weight": Levels((-1, 0, 1)), "bias": "real"})
    with m.residual():
        m.conv2d(2, 1, control=Binary())
    m.flatten(); m.dense(3, control=ocdl.Box(-1, 1)); m.terminal("cross_entropy").l1(1e-3)
    spec = m.spec()
    r = relax(spec)
    assert has_discrete(spec) and not has_discrete(r)
    assert r.stages[0].control == {"weight": Real(), "bias": Real()}
    assert r.stages[1].stages[0].control == Real()
    assert r.stages[3].control == ocdl.Box(-1, 1)
    assert r.cost == spec.cost and [s.name for s in r.stages] == [s.name for s in spec.stages]
    system = r.compile()
    assert system.control["conv2d1.weight"].l1 == 1e-3 and not any(
        c.cset.discrete for c in system.controls)


def test_compare_runs_adam_on_the_relaxed_model(tmp_path):
    from tests.conftest import ROOT
    res = ocdl.compare(ROOT / "models/quickstart.yaml", "emsa-ternary,adam", epochs=1,
                       out=tmp_path, overrides={"data.limit": 600}, quiet=True, plots=False)
    assert set(res.runs) == {"emsa-ternary", "adam [real]"}
    adam = res.runs["adam [real]"][0]
    assert adam.status == "completed" and adam.nonzero_fraction > 0.99
    assert res.runs["emsa-ternary"][0].status == "completed"
