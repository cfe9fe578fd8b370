#!/usr/bin/env python3
"""A run like a recorded one, with independent Gaussian noise added to every batch's M.

Tests whether noise of a given size in M = −∇_θ J (the per-batch error that bf16 autocast
brings, measured by ``tools/amp_error.py``) alone changes what a solver does: each step, for
every control, M ← M + z·(r‖M‖/‖z‖) with z standard Gaussian (its own generator, seeded by
``--noise-seed``, so the run's other draws are unchanged), so the noise has norm r‖M‖ and is
independent from entry to entry and from batch to batch. With ``--scaled`` each entry's noise is
proportional to its own |M| instead (z ⊙ |M|, then scaled to the same norm r‖M‖): noise where M
is large, none where it is 0. r = 0 is the recorded run itself.

    python tools/noisy_m.py --like RUN --rel 0.08 --out DIR [--scaled] [--seed S] [--set K=V ...]
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@contextmanager
def noisy_costates(rel: float, seed: int = 12345, scaled: bool = False) -> Iterator[None]:
    """Within the block, :meth:`ocdl.system.System.costates` adds the noise of the module
    docstring to every M it returns (``scaled``: proportional to |M| entry by entry)."""
    from ocdl.system import System
    gens: dict[torch.device, torch.Generator] = {}  # one per device: the noise is drawn there
    orig = System.costates

    def costates(self, states, y, **kw):
        c = orig(self, states, y, **kw)
        if rel:
            with torch.no_grad():
                for m in c.M.values():
                    gen = gens.get(m.device)
                    if gen is None:
                        gen = gens[m.device] = torch.Generator(m.device).manual_seed(seed)
                    z = torch.randn(m.shape, generator=gen, dtype=m.dtype, device=m.device)
                    if scaled:
                        z.mul_(m.abs())
                    m.add_(z * (rel * m.norm() / z.norm().clamp_min(1e-30)))
        return c
    System.costates = costates
    try:
        yield
    finally:
        System.costates = orig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--like", required=True, help="the recorded run (folder or config.yaml)")
    ap.add_argument("--rel", type=float, required=True, help="noise norm as a fraction of ‖M‖")
    ap.add_argument("--out", required=True, help="the new run folder")
    ap.add_argument("--seed", type=int, help="the run's seed (default: the recorded one)")
    ap.add_argument("--noise-seed", type=int, default=12345)
    ap.add_argument("--scaled", action="store_true",
                    help="noise proportional to each entry's |M| (default: the same for all)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    if not args.rel >= 0:
        ap.error("--rel must be 0 or more")
    from ocdl.api import solve
    from ocdl.errors import OcdlError
    from ocdl.run.overrides import parse_sets
    try:
        with noisy_costates(args.rel, args.noise_seed, args.scaled):
            result = solve(like=args.like, out=args.out, seed=args.seed,
                           overrides=parse_sets(args.sets))
    except OcdlError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(result.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
