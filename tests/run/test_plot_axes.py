"""The comparison plots' axes: whole-epoch ticks, accuracies and fractions in percent."""
import matplotlib

matplotlib.use("Agg", force=True)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

from ocdl.run.plots import compare_figures  # noqa: E402


def histories(epochs: int) -> dict:
    def run(offset):
        return [{"epoch": e, "loss": 1.0 / e + offset, "test_acc": 0.80 + 0.03 * e + offset,
                 "nonzero": 0.5 - 0.02 * e, "time": 1.5 * e, "train_time": 1.2 * e}
                for e in range(1, epochs + 1)]
    return {"a": [run(0.0), run(0.01)], "b": [run(0.02)]}


def figures(epochs: int):
    """The figures (drawn, so that their ticks are final) and their axes, by file name."""
    figs = dict(compare_figures(histories(epochs), title="t"))
    for fig in figs.values():
        fig.canvas.draw()
    return figs, {name: fig.axes[0] for name, fig in figs.items()}


def test_epoch_axes_have_whole_epoch_ticks():
    for epochs in (1, 2, 3, 5, 12):
        figs, axes = figures(epochs)
        try:
            for name in ("loss_vs_epoch.png", "accuracy_vs_epoch.png", "sparsity_vs_epoch.png"):
                lo, hi = axes[name].get_xlim()
                ticks = [t for t in axes[name].get_xticks() if lo <= t <= hi]
                assert ticks and all(float(t).is_integer() for t in ticks), (name, ticks)
                if epochs <= 5:                                  # every epoch, and no 1.5
                    assert list(ticks) == list(range(1, epochs + 1)), (name, ticks)
        finally:
            for fig in figs.values():
                plt.close(fig)


def test_accuracy_and_fractions_in_percent():
    figs, axes = figures(4)
    try:
        for name in ("accuracy_vs_epoch.png", "accuracy_vs_time.png", "sparsity_vs_epoch.png"):
            fmt = axes[name].yaxis.get_major_formatter()
            assert isinstance(fmt, PercentFormatter), name
            labels = [t.get_text() for t in axes[name].get_yticklabels() if t.get_text()]
            assert labels and all(x.endswith("%") for x in labels), (name, labels)
        assert axes["accuracy_vs_epoch.png"].yaxis.get_major_formatter()(0.95, 0) \
            .startswith("95")
        # the loss is not a fraction
        assert not isinstance(axes["loss_vs_epoch.png"].yaxis.get_major_formatter(),
                              PercentFormatter)
    finally:
        for fig in figs.values():
            plt.close(fig)
