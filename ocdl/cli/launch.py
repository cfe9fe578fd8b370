"""``ocdl solve --nproc N``: the same command, data-parallel on N processes of this machine,
launched by torchrun (``python -m torch.distributed.run --standalone --nproc_per_node N -m
ocdl.cli solve …``; :mod:`ocdl.run.distributed`). No torch import here: torchrun runs in its own
process."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError


def solve_args(*, model: str | None, recipe: str | None, solver: str | None,
               sets: Sequence[str], epochs: int | None, device: str | None, out: str | None,
               resume: str | None, like: str | None, seed: int | None, relax: bool,
               quiet: bool, as_json: bool) -> list[str]:
    """The arguments of ``ocdl solve`` that give these options (without ``--nproc``)."""
    args = [] if model is None else [str(model)]
    for flag, value in (("--recipe", recipe), ("--solver", solver), ("--epochs", epochs),
                        ("--device", device), ("--out", out), ("--resume", resume),
                        ("--like", like), ("--seed", seed)):
        if value is not None:
            args += [flag, str(value)]
    for s in sets:
        args += ["--set", s]
    args += [f for f, on in (("--relax", relax), ("--quiet", quiet), ("--json", as_json)) if on]
    return args


# torchrun's main, but when a process fails it exits with that process's code, and on Ctrl-C
# with 130, without torchrun's own log lines and traceback under the processes' own lines
_TORCHRUN = """import logging
import sys
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import main
logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
try:
    main(sys.argv[1:])
except ChildFailedError as e:
    _, failure = e.get_first_failure()
    sys.exit(failure.exitcode if failure.exitcode > 0 else 1)
except SignalException as e:  # Ctrl-C: torchrun passed it on and waited for the processes
    sys.exit(128 + int(e.sigval))
"""


def torchrun_command(nproc: int, args: Sequence[str]) -> list[str]:
    """The torchrun command line that runs ``ocdl solve ARGS`` on ``nproc`` local processes."""
    return [sys.executable, "-c", _TORCHRUN, "--standalone", f"--nproc_per_node={nproc}",
            "-m", "ocdl.cli", "solve", *args]


def launch_solve(nproc: int, **options: Any) -> int:
    """Run ``ocdl solve`` with ``options`` under torchrun on ``nproc`` processes; returns its
    exit code (torchrun's: non-zero when any process failed, after it ended the others)."""
    if os.environ.get("WORLD_SIZE"):
        raise ConfigError("--nproc launches torchrun, and this process already runs under it "
                          f"(WORLD_SIZE={os.environ['WORLD_SIZE']}); drop --nproc")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # N processes share the cores
    env.setdefault("LOGLEVEL", "ERROR")  # torchrun's loggers: no warnings under our lines
    job = subprocess.Popen(torchrun_command(nproc, solve_args(**options)), env=env)
    while True:
        try:
            return job.wait()
        except KeyboardInterrupt:  # the processes had Ctrl-C too: they stop after the same
            continue  # step and rank 0 saves; wait for them (torchrun ends one that hangs)
