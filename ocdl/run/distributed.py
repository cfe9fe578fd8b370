"""Data-parallel training on torch.distributed (gloo on the CPU, NCCL on GPUs), launched by
torchrun (``torchrun --nproc_per_node N -m ocdl.cli solve …`` or ``ocdl solve --nproc N``).

N processes (ranks r = 0..N−1) hold the same controls θ. Every global batch of S = N·b samples
(``data.batch_size`` = b per rank) is drawn as a single process would draw it, and rank r keeps
its contiguous rows (:class:`ocdl.data.feeder.Feeder`'s ``shard``). With S_r the rows of rank r
and J_r their mean loss, the global objective is J = Σ_r (S_r/S) J_r, so (DESIGN.md §1)

    M_t = −∇_{θ_t} J = Σ_r (S_r/S) · (−∇_{θ_t} J_r) = Σ_r M_{r,t}  with  M_r computed from (S_r/S)·J_r.

:meth:`System.costates` runs its reverse pass on (S_r/S)·J_r (so p_{s,T} = −(1/S)∇Φ is the
global batch's costate) and calls :meth:`DataParallel.reduce_costates`, which sums every M,
J and the loss over the ranks with ONE ``all_reduce`` of one flat buffer per step. Every solver
reads M from there, so each computes the same update on every rank and θ stays equal without a
broadcast.

Solvers that work with the per-sample costates p (E-MSA's ``adaptive_rho`` and augmented inner
steps, MSA's inner steps on real controls) evaluate sums over samples such as Σ_s H_t: rank r
evaluates its rows' share (the control costs weighted by S_r/S, :meth:`System.rank_share`) and
:meth:`System.sum_over_ranks` adds the shares, so every inner step's gradient, the feasibility
errors and the replayed J are those of the global batch (one small ``all_reduce`` each).

BatchNorm uses each rank's own batch statistics unless ``run.sync_bn`` is set: then the
per-channel sums are all-reduced (:mod:`ocdl.ops.sync_batchnorm`) and a run of N×b reproduces a
single-process run with batch N·b up to float summation order; per-rank statistics do not.
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch

from ..errors import ConfigError, DistributedError, OcdlError, SolverError


def launched() -> bool:
    """Was this process started by torchrun (or another launcher that sets ``WORLD_SIZE``)
    with more than one process?"""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def rank() -> int:
    """This process's rank (0 outside a launched job)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


class DataParallel:
    """The process group of a data-parallel run and the reductions the run needs.

    ``feeder``: the sharded training feeder, whose ``global_size`` is S of the batch last
    yielded (a short last batch has fewer rows)."""

    def __init__(self, rank: int, world: int, device: torch.device, sync_bn: bool = False):
        self.rank = rank
        self.world = world
        self.device = device
        self.sync_bn = sync_bn
        self.feeder: Any = None
        self.steps = 0
        self._old_sigterm: Any = None
        self._stop_local = False  # this rank saw Ctrl-C
        self._stop_any: torch.Tensor | None = None  # some rank had, as of the last reduction

    @property
    def writer(self) -> bool:
        """Rank 0 alone writes the log, the checkpoints and the run folder."""
        return self.rank == 0

    # ------------------------------------------------------------------ sizes
    def global_samples(self, local: int) -> int:
        """S, the samples of the global batch that this rank's ``local`` rows belong to."""
        g = getattr(self.feeder, "global_size", None)
        return int(g) if g else local * self.world

    def weight(self, local: int) -> float:
        """S_r / S: the share of this rank's rows in the global batch."""
        return local / self.global_samples(local)

    # ------------------------------------------------------------------ reductions
    def lost(self, e: BaseException, what: str) -> DistributedError:
        """The error of a collective that failed because a peer died (gloo and NCCL report a
        closed connection or a timeout). From here on SIGTERM is ignored: the process is ending
        with this one error, and torchrun's SIGTERM must not cut its report short."""
        if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self._old_sigterm = None  # close() leaves it ignored
        first = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        return DistributedError(
            f"rank {self.rank}: lost another process during {what} ({first}); it failed or was "
            "killed, and torchrun ends the job; the last checkpoint is kept: resume with ocdl "
            "solve --resume RUN (with any number of processes)")

    @staticmethod
    def is_collective_failure(e: BaseException) -> bool:
        """Does ``e`` look like a collective that failed (a peer gone, a timeout)?"""
        text = str(e).lower()
        return isinstance(e, RuntimeError) and any(
            w in text for w in ("gloo", "nccl", "connection", "peer", "timed out", "timeout",
                                "broken pipe", "socket"))

    def _all_reduce(self, buf: torch.Tensor, what: str) -> None:
        import torch.distributed as dist
        try:
            dist.all_reduce(buf)
        except RuntimeError as e:
            raise self.lost(e, f"the all-reduce of {what}") from None

    def prepare_costates(self, local: int) -> float:
        """Before the reverse pass on S_r = ``local`` rows: return S_r/S, the weight of this
        rank's objective (refusing a reverse pass inside a captured CUDA graph)."""
        if self.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            raise SolverError("cuda_graph: step captures the reverse pass, and with it the "
                              "all-reduce of M that a data-parallel run makes each step; set "
                              "cuda_graph: true (the update alone) or false")
        return self.weight(local)

    def reduce_costates(self, M: dict[str, torch.Tensor], J: torch.Tensor, loss: torch.Tensor,
                        w: float) -> tuple[torch.Tensor, torch.Tensor]:
        """M ← Σ_r M_r in place, and (J, loss) ← Σ_r w_r (J_r, loss_r) with w_r = S_r/S: one
        flat buffer, one ``all_reduce``. M_r must come from the weighted objective w_r·J_r;
        J and loss are the rank's unweighted means."""
        names = list(M)
        dtype = M[names[0]].dtype if names else J.dtype
        flat = torch.cat([M[n].reshape(-1).to(dtype) for n in names]
                         + [(J.detach() * w).reshape(1).to(dtype),
                            (loss.detach() * w).reshape(1).to(dtype),
                            J.new_full((1,), float(self._stop_local), dtype=dtype)])
        self.steps += 1
        self._all_reduce(flat, f"M in step {self.steps}")
        k = 0
        for n in names:
            m = M[n]
            m.copy_(flat[k:k + m.numel()].view(m.shape))
            k += m.numel()
        stop = flat[k + 2]
        self._stop_any = stop if self._stop_any is None else torch.maximum(self._stop_any, stop)
        return flat[k].to(J.dtype), flat[k + 1].to(loss.dtype)

    # ------------------------------------------------------------------ Ctrl-C
    def request_stop(self) -> None:
        """This rank saw Ctrl-C: the flag rides along the next step's all-reduce of M."""
        self._stop_local = True

    def stop_agreed(self, read: bool = True) -> bool:
        """Has any rank asked to stop, as of the last step's reduction? Every rank gets the
        same answer after the same step, so all stop at the same batch. ``read``: look now
        (a host sync on a GPU, so the loop reads it only at its sync points there)."""
        return read and self._stop_any is not None and bool(self._stop_any.item() > 0)

    def sum_(self, values: torch.Tensor, what: str) -> torch.Tensor:
        """Σ_r values (in place), e.g. an evaluation's loss sum, correct count and samples."""
        self._all_reduce(values, what)
        return values

    def sum_all_(self, tensors: list[torch.Tensor], what: str) -> None:
        """Σ_r of each tensor (in place; one flat buffer, one ``all_reduce``): the inner
        steps' gradients, an E-MSA step's feasibility errors and replayed objective."""
        if not tensors:
            return
        dtype = tensors[0].dtype
        for t in tensors[1:]:
            dtype = torch.promote_types(dtype, t.dtype)
        flat = torch.cat([t.detach().reshape(-1).to(dtype) for t in tensors])
        self._all_reduce(flat, what)
        k = 0
        with torch.no_grad():
            for t in tensors:
                t.copy_(flat[k:k + t.numel()].view(t.shape))
                k += t.numel()

    def barrier(self) -> None:
        """Wait until every rank is here."""
        import torch.distributed as dist
        try:
            dist.barrier()
        except RuntimeError as e:
            raise self.lost(e, "a barrier") from None

    def from_writer(self, make: Callable[[], str]) -> str:
        """``make()`` (a text, e.g. the run folder's path) on rank 0, sent to every rank; an
        :class:`OcdlError` raised there is raised again, with the same class and message, on
        every rank. Sent as UTF-8 JSON in a byte tensor, never as a pickle: no rank unpickles
        what another sent."""
        message: dict[str, str] = {}
        if self.writer:
            try:
                message = {"ok": str(make())}
            except OcdlError as e:
                message = {"error": type(e).__name__, "message": str(e)}
                self._broadcast_json(message)
                raise
        message = self._broadcast_json(message)
        if "error" in message:
            from .. import errors
            kind = getattr(errors, message["error"], OcdlError)
            raise (kind if isinstance(kind, type) and issubclass(kind, OcdlError)
                   else OcdlError)(message["message"])
        return message["ok"]

    def _broadcast_json(self, message: dict[str, str]) -> dict[str, str]:
        """``message`` of rank 0 on every rank: its length, then its UTF-8 JSON bytes."""
        import json

        import torch.distributed as dist
        dev = self.device if self.device.type == "cuda" else torch.device("cpu")
        data = json.dumps(message).encode() if self.writer else b""
        size = torch.tensor([len(data)], dtype=torch.int64, device=dev)
        try:
            dist.broadcast(size, src=0)
            buf = (torch.frombuffer(bytearray(data), dtype=torch.uint8).to(dev) if self.writer
                   else torch.empty(int(size.item()), dtype=torch.uint8, device=dev))
            dist.broadcast(buf, src=0)
        except RuntimeError as e:
            raise self.lost(e, "the broadcast of the run folder") from None
        return json.loads(bytes(buf.cpu().tolist()).decode())

    # ------------------------------------------------------------------ termination
    def _on_sigterm(self, signum, frame) -> None:
        raise self.lost(RuntimeError("torchrun stopped this process"), "the run")

    def catch_sigterm(self) -> None:
        """When one process fails or is killed, torchrun sends SIGTERM to the others. Whichever
        a rank meets first, a failed collective or that SIGTERM, it ends with the same one-line
        :meth:`lost` error (checkpoints are written with ``os.replace``, so none is cut)."""
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)

    def close(self) -> None:
        """Leave the process group (and stop sharing BatchNorm statistics)."""
        import torch.distributed as dist
        from ..ops import sync_batchnorm
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        sync_batchnorm.disable()
        if dist.is_initialized():
            dist.destroy_process_group()


def start(device: torch.device, *, sync_bn: bool = False) -> DataParallel | None:
    """Join the process group that torchrun set up (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``/``MASTER_PORT`` in the environment): NCCL for CUDA devices, gloo otherwise.
    None when this is a single-process run."""
    if not launched():  # one process: its batch is the global batch (sync_bn changes nothing)
        return None
    import torch.distributed as dist
    r, n = rank(), int(os.environ["WORLD_SIZE"])
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        try:
            dist.init_process_group(backend, timeout=timedelta(minutes=10))
        except (RuntimeError, ValueError) as e:
            raise DistributedError(f"rank {r}: cannot join the process group of {n} processes "
                                   f"({str(e).splitlines()[0][:120]}); launch with torchrun "
                                   "or ocdl solve --nproc N") from None
    dp = DataParallel(r, n, device, sync_bn=sync_bn)
    dp.catch_sigterm()
    if sync_bn:
        from ..ops import sync_batchnorm
        sync_batchnorm.enable(dp)
    return dp


def local_device(device: torch.device) -> torch.device:
    """On CUDA, each process of a node takes the GPU of its ``LOCAL_RANK``."""
    if device.type == "cuda" and launched() and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def attach(dp: DataParallel | None, system: Any, feeders: Any) -> None:
    """Shard the feeders over the ranks and install ``dp`` on the system (its reverse pass
    then reduces M: :meth:`System.costates`)."""
    if dp is None:
        return
    if not getattr(system.spec, "takes_data", True):
        raise ConfigError(f"model '{system.spec.name}' is an equation-defined problem with one "
                          "fixed batch of initial states; data-parallel runs shard a dataset: "
                          "solve it on one process")
    for f in (feeders.train, getattr(feeders, "valid", None), feeders.test):
        if f is not None:
            f.set_shard(dp.rank, dp.world)
    dp.feeder = feeders.train
    system.data_parallel = dp


def world_change_line(saved: int, now: int, batch: int) -> str:
    """The line a resumed run prints when the number of processes differs from the run's."""
    return (f"resuming with {now} process{'es' if now > 1 else ''} where the run had {saved}: "
            f"the global batch becomes {now}×{batch} = {now * batch} samples (was "
            f"{saved * batch})")
