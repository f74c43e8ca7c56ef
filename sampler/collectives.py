"""The sampler's torch.distributed calls, each bounded by a timeout.

A rank that never starts, stalls or dies must not block the others forever. Every
collective here is issued asynchronously and waited for with :func:`wait`, which turns a
timeout or a lost peer into one :class:`DistributedError` naming the rank, the step and the
timeout. With the gloo backend a collective that times out on one rank closes its
connections, so the other ranks fail at once instead of waiting out their own timeout.
"""

from __future__ import annotations

import datetime
import math
import numbers

import torch

__all__ = ["DistributedError", "as_timeout", "wait", "all_reduce", "broadcast_int"]


class DistributedError(RuntimeError):
    """A torch.distributed step did not complete: a rank stalled, died or never started."""


def as_timeout(value, name: str = "timeout") -> datetime.timedelta | None:
    """Validate a timeout: ``None``, a finite number of seconds > 0, or a timedelta > 0."""
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ValueError(f"{name} must be None, a number of seconds or a timedelta, got "
                         f"{value!r}")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return datetime.timedelta(seconds=seconds)


def describe(timeout: datetime.timedelta | None) -> str:
    if timeout is None:
        return "the process group's timeout"
    return f"the timeout of {timeout.total_seconds():g} s"


def wait(work, what: str, timeout: datetime.timedelta | None) -> None:
    """Wait for an async collective; a timeout or a lost peer is a DistributedError."""
    import torch.distributed as dist

    try:
        if timeout is None:
            work.wait()
        else:
            work.wait(timeout=timeout)
    except RuntimeError as exc:
        rank = f"rank {dist.get_rank()} of {dist.get_world_size()}"
        text = str(exc)
        first = (text.strip().splitlines() or [type(exc).__name__])[0]
        if "imed out" in text or "timeout" in text.lower():
            raise DistributedError(
                f"{rank}: {what} did not complete within {describe(timeout)} (another rank "
                "stalled, died or never got there)") from exc
        raise DistributedError(
            f"{rank}: {what} failed, another rank is gone (it failed, was killed, or gave "
            f"up after {describe(timeout)}): {first[:200]}") from exc


def all_reduce(tensor: torch.Tensor, op, what: str,
               timeout: datetime.timedelta | None) -> torch.Tensor:
    """``dist.all_reduce(tensor, op)`` in place, bounded by ``timeout``."""
    import torch.distributed as dist

    wait(dist.all_reduce(tensor, op=op, async_op=True), what, timeout)
    return tensor


def broadcast_int(value: int, bits: int, device: torch.device, what: str,
                  timeout: datetime.timedelta | None) -> int:
    """Rank 0's non-negative integer of at most ``bits`` bits, on every rank."""
    import torch.distributed as dist

    words = -(-bits // 32)
    parts = [(value >> (32 * i)) & 0xFFFFFFFF for i in range(words)]
    box = torch.tensor(parts, dtype=torch.int64, device=device)
    wait(dist.broadcast(box, src=0, async_op=True), what, timeout)
    return sum(int(v) << (32 * i) for i, v in enumerate(box.tolist()))
