"""The one-line epoch summary that ``ocdl solve`` prints."""
from ocdl.run.progress import epoch_line


def test_epoch_line_shows_what_the_record_has():
    r = {"epoch": 3, "loss": 0.12345, "valid_acc": 0.971, "test_acc": 0.968, "nonzero": 0.0195,
         "epoch_time": 4.21}
    assert epoch_line(r, 10) == ("epoch   3/10  loss 0.1235  valid 97.10%  test 96.80%  "
                                 "nonzero 1.95%  4.2 s")
    assert epoch_line({"epoch": 1}, 2) == "epoch   1/2"


def test_epoch_line_shows_the_lambda_scale_of_a_nonzero_target():
    r = {"epoch": 5, "loss": 0.5, "nonzero": 0.02, "lambda_scale": 2.3141, "epoch_time": 1.0}
    assert epoch_line(r, 20) == "epoch   5/20  loss 0.5000  nonzero 2.00%  λ×2.31  1.0 s"
    r["nonzero/target"] = 0.0457  # an annealed target's epoch mean
    assert epoch_line(r, 20) == ("epoch   5/20  loss 0.5000  nonzero 2.00%  target 4.57%  "
                                 "λ×2.31  1.0 s")


def test_epoch_line_shows_dead_units_only_where_some_died():
    r = {"epoch": 9, "loss": 0.5, "nonzero": 0.0193, "dead": 0.0, "epoch_time": 1.0}
    assert epoch_line(r, 20) == "epoch   9/20  loss 0.5000  nonzero 1.93%  1.0 s"
    r["dead"] = 22 / 6154
    assert epoch_line(r, 20) == "epoch   9/20  loss 0.5000  nonzero 1.93%  dead 0.36%  1.0 s"


def test_a_long_epoch_line_is_not_wrapped_at_the_console_width():
    import io

    from rich.console import Console

    from ocdl.run.progress import LineReporter
    buf = io.StringIO()
    rep = LineReporter(Console(file=buf, width=40, highlight=False))
    rep.start(500, 450)
    r = {"epoch": 179, "loss": 0.0073, "valid_acc": 0.8934, "test_acc": 0.8798,
         "nonzero": 0.0125, "lambda_scale": 1.5, "epoch_time": 2.9}
    rep.epoch_end(r)
    assert buf.getvalue() == epoch_line(r, 500) + "\n"


def test_progress_line_gives_batch_loss_rate_and_eta():
    from ocdl.run.progress import progress_line
    assert progress_line(3, 10, 120, 550, 4.0, 0.12345) == (
        "epoch   3/10  batch 120/550  loss 0.1235  4 it/s  ETA 1:48")  # 430 batches / 4 it/s
    assert progress_line(1, 2, 0, 5, 0.0, None) == "epoch   1/2  batch 0/5"


def test_without_a_terminal_a_long_epoch_prints_progress_lines(fake, tiny_model, tmp_path,
                                                               monkeypatch):
    """A log file of a run shows progress within an epoch (at each metric sync, at most every
    PROGRESS_EVERY seconds), not only one line per epoch."""
    import io

    from rich.console import Console

    from ocdl.api import solve
    from ocdl.run import lifecycle, progress

    def reporter_on(buf):  # what ocdl solve makes when stderr is not a terminal, on buf
        reporter = progress.make_reporter(False, bar=False)
        reporter.console = Console(file=buf, highlight=False)
        monkeypatch.setattr(lifecycle, "make_reporter", lambda quiet: reporter)

    buf = io.StringIO()
    monkeypatch.setattr(progress, "PROGRESS_EVERY", 0.0)
    reporter_on(buf)
    solve(tiny_model, "fake", epochs=2, out=tmp_path / "r", quiet=False,
          overrides={"run.log_every": 1, "run.device": "cpu"})
    lines = buf.getvalue().splitlines()
    batches = [ln for ln in lines if " batch " in ln]
    assert batches and all("loss " in ln and "it/s" in ln and "ETA " in ln for ln in batches)
    assert [ln.split()[1] for ln in lines if " batch " not in ln] == ["1/2", "2/2"]  # epoch lines
    # the throttle: at the default interval a short run prints only its epoch lines
    buf2 = io.StringIO()
    monkeypatch.setattr(progress, "PROGRESS_EVERY", 3600.0)
    reporter_on(buf2)
    solve(tiny_model, "fake", epochs=1, out=tmp_path / "q", quiet=False,
          overrides={"run.log_every": 1, "run.device": "cpu"})
    assert [ln for ln in buf2.getvalue().splitlines() if " batch " in ln] == []
