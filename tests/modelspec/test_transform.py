"""relaxed(): discrete sets become real, everything else stays; compare uses it for adam. The
problem protocol's other answers (default solver) for both kinds of spec."""
import ocdl
from ocdl import Binary, Levels, Model, Real
from ocdl.models import model_path
from ocdl.modelspec import loads_spec


def test_relax_replaces_only_discrete_sets():
    m = Model("r", input=(3, 4, 4))
    m.conv2d(2, 3, padding=1, control={"weight": Levels((-1, 0, 1)), "bias": "real"})
    with m.residual():
        m.conv2d(2, 1, control=Binary())
    m.flatten(); m.dense(3, control=ocdl.Box(-1, 1)); m.terminal("cross_entropy").l1(1e-3)
    spec = m.spec()
    r = spec.relaxed()
    assert spec.has_discrete() and not r.has_discrete()
    assert spec.default_solver() == "emsa-binary" and r.default_solver() == "emsa"
    assert r.stages[0].control == {"weight": Real(), "bias": Real()}
    assert r.stages[1].stages[0].control == Real()
    assert r.stages[3].control == ocdl.Box(-1, 1)
    assert r.cost == spec.cost and [s.name for s in r.stages] == [s.name for s in spec.stages]
    system = r.compile()
    assert system.control["conv2d1.weight"].l1 == 1e-3 and not any(
        c.cset.discrete for c in system.controls)


def test_compare_runs_adam_on_the_relaxed_model(tmp_path):
    res = ocdl.compare(model_path("quickstart"), "emsa-ternary,adam", epochs=1,
                       out=tmp_path, overrides={"data.limit": 600}, quiet=True, plots=False)
    assert set(res.runs) == {"emsa-ternary", "adam [real]"}
    adam = res.runs["adam [real]"][0]
    assert adam.status == "completed" and adam.nonzero_fraction > 0.99
    assert res.runs["emsa-ternary"][0].status == "completed"


EQUATIONS = """
ocdl: 1
name: eq
system:
  states: {x: 1.0}
  controls: {u: ternary, v: real}
  horizon: 3
  dynamics: {x: x + u + v}
  cost: {running: v**2, terminal: x**2}
"""


def test_an_equation_spec_answers_the_same_questions():
    spec = loads_spec(EQUATIONS)
    assert not spec.takes_data and spec.input == (1,)
    assert spec.has_discrete() and spec.default_solver() == "emsa-ocp-discrete"
    r = spec.relaxed()
    assert not r.has_discrete() and r.default_solver() == "emsa-ocp"
    assert [c.kind for _, c in r.system.controls] == ["real", "real"]
    system = spec.compile()
    feeders = spec.feeders(system, system.device)
    (x, _), = list(feeders.train.epoch(1))
    assert x.tolist() == [[1.0]] and feeders.valid is None
