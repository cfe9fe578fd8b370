"""A tracker of one's own: ocdl.api.solve(callbacks=[...]) calls each callback with every event
of the run (ocdl/run/events.py); this one writes each epoch's record to a CSV file and prints the
checkpoints. Run: python examples/csv_tracker.py [OUT_DIR]"""
import csv
import sys
from pathlib import Path

from ocdl.api import solve

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/csv-tracker")
rows = out.parent / f"{out.name}-epochs.csv"
COLUMNS = ["epoch", "loss", "valid_acc", "test_acc", "nonzero", "flips", "epoch_time"]


def csv_writer(event):
    if event.kind == "epoch_end":
        new = not rows.exists()
        with rows.open("a", newline="") as f:
            w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(event.record)
    elif event.kind == "checkpoint" and event.record["best"]:
        print(f"best so far after epoch {event.epoch - 1}: {event.record['path']}")


rows.unlink(missing_ok=True)
result = solve("quickstart", "emsa-ternary", epochs=3, out=out, callbacks=[csv_writer])
print(rows.read_text())
