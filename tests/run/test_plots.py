"""Which comparison plots use a log axis."""
from ocdl.run.plots import log_axis


def hist(key, *values):
    return {"run": [[{"epoch": i + 1, key: v} for i, v in enumerate(values)]]}


def test_sparsity_falling_over_decades_is_drawn_on_a_log_axis():
    assert log_axis(hist("nonzero", 0.6, 0.05, 0.01), "nonzero")
    assert not log_axis(hist("nonzero", 0.6, 0.5, 0.4), "nonzero")      # less than a decade
    assert not log_axis(hist("nonzero", 0.6, 0.0), "nonzero")            # a zero: linear
    assert log_axis(hist("loss", 2.3, 0.1), "loss")
    assert not log_axis(hist("test_acc", 0.1, 0.99), "test_acc")        # accuracy: always linear
    assert not log_axis(hist("nonzero"), "nonzero")                      # nothing recorded
