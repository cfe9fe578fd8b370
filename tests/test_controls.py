"""Admissible sets: initialisation, projection (against brute force) and spec parsing."""
import pytest
import torch

from ocdl.controls import Binary, Box, Levels, Real, Ternary, control_from_dict
from ocdl.errors import SpecError

SETS = [Binary(), Ternary(), Levels((-1.0, -0.5, 0.0, 0.5, 1.0)), Levels((-2.0, 0.25, 3.0))]


@pytest.mark.parametrize("cset", SETS, ids=lambda s: s.describe())
def test_finite_sets_init_uniformly_and_project_to_nearest(cset):
    g = torch.Generator().manual_seed(1)
    theta = cset.init((200, 50), generator=g)
    assert cset.contains(theta)
    counts = torch.stack([(theta == v).float().mean() for v in cset.values])
    assert torch.allclose(counts, torch.full_like(counts, 1 / len(cset.values)), atol=0.02)
    x = torch.randn(1000, dtype=torch.float64) * 2
    lv = torch.tensor(cset.values, dtype=torch.float64)
    brute = lv[(x[:, None] - lv[None, :]).abs().argmin(dim=1)]
    proj = cset.project(x)
    # equal except on exact ties (measure zero here)
    assert torch.equal(proj, brute)


def test_box_and_real():
    b = Box(-0.5, 2.0)
    t = b.init((1000,), generator=torch.Generator().manual_seed(0))
    assert t.min() >= -0.5 and t.max() <= 2.0 and b.contains(t)
    assert torch.equal(b.project(torch.tensor([-3.0, 0.1, 9.0])), torch.tensor([-0.5, 0.1, 2.0]))
    r = Real("kaiming_uniform")
    w = r.init((64, 100), generator=torch.Generator().manual_seed(0))
    assert w.abs().max() <= 0.1 + 1e-7 and w.std() > 0.04
    assert torch.equal(Real("zeros").init((3,)), torch.zeros(3))


def test_binary_sign_convention_zero_is_plus_one():
    assert torch.equal(Binary().project(torch.tensor([0.0, -1e-9, 3.0])),
                       torch.tensor([1.0, -1.0, 1.0]))


@pytest.mark.parametrize("d, expected", [
    ("ternary", Ternary()), ({"set": "binary"}, Binary()),
    ({"set": "levels", "values": [-1, 0, 1]}, Levels((-1, 0, 1))),
    ({"set": "box", "lo": -1, "hi": 1}, Box(-1.0, 1.0)),
    ({"set": "real", "init": "xavier_normal", "scale": 2}, Real("xavier_normal", 2.0))])
def test_parse(d, expected):
    assert control_from_dict(d) == expected
    assert control_from_dict(expected.to_dict()) == expected


@pytest.mark.parametrize("d, msg", [
    ("ternery", "did you mean 'ternary'"),
    ({"set": "box", "lo": 1, "hi": 0}, "lo < hi"),
    ({"set": "box", "lo": 0}, "needs 'hi'"),
    ({"set": "levels", "values": [1, 0]}, "strictly increasing"),
    ({"set": "levels", "values": [1]}, "at least 2 levels"),
    ({"set": "levels"}, "needs 'values'"),
    ({"set": "real", "init": "xavier"}, "did you mean"),
    ({"set": "binary", "lo": 0}, "unknown key 'lo'"),
])
def test_parse_errors(d, msg):
    with pytest.raises(SpecError, match=msg):
        control_from_dict(d, "stages[0].control")
