"""Adaptive certification straight from a torch model: sample each input until it is decided.

:func:`sample_adaptive` is :func:`topk_bounds.adaptive.certify_adaptive` with a ``draw``
that runs the model: at every look it counts, for every input still undecided, the next
noise blocks of that input's reproducible stream (:mod:`sampler.streams`), all of those
inputs packed together into full forward batches. The looks are multiples of the block
size, so an input that stops after ``n`` samples has counted exactly the first ``n``
samples of its stream: its counts are those of ``sample_counts(..., n=n)``, whatever the
batch size or the number of ranks.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import sys
from typing import Any, Callable, Sequence

import numpy as np
import torch

from topk_bounds.adaptive import (FINAL_SHARE, FIRST_N, FUTILITY, GROWTH, AdaptiveResult,
                                  certify_adaptive, look_schedule)

from .core import prepare
from .streams import ESTIMATION

__all__ = ["sample_adaptive"]


def sample_adaptive(model: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
                    labels, *, k: int, sigma: float, alpha: float, radius: float, max_n: int,
                    batch_size: int, method: str = "ranked", first_n: int = FIRST_N,
                    growth: float = GROWTH, final_share: float = FINAL_SHARE,
                    futility: float | None = FUTILITY, num_classes: int | None = None,
                    seed: int | None = None, device: str | torch.device | None = None,
                    indices: Sequence[int] | None = None, progress: Any = False,
                    distributed: bool | None = None,
                    timeout: float | datetime.timedelta | None = None,
                    noise: str = "gaussian", grid: int | None = None) -> AdaptiveResult:
    """Decide for each input whether its label is certified in the top k at ``radius``,
    running the model only as many times as that takes.

    The sequential procedure of :func:`topk_bounds.adaptive.certify_adaptive` (looks on a
    schedule fixed in advance, a share of ``alpha`` at each, ranked bounds, a futility
    stop), fed by the sampler of :func:`sampler.sample_counts`: at each look, the noisy
    samples of every input still undecided are drawn and counted together.

    Parameters
    ----------
    model, inputs, batch_size, num_classes, seed, device, indices, distributed, timeout, noise, grid
        As for :func:`sampler.sample_counts`. A forward batch holds ``batch_size`` noisy
        samples of as many undecided inputs as it takes to fill it.
    labels : array_like of int, shape (B,)
        The label to certify for each input, fixed without looking at its counts (the
        true label, or one selected from separate samples).
    k, sigma, alpha, radius, max_n, method, first_n, growth, final_share, futility
        As for :func:`topk_bounds.adaptive.certify_adaptive`: top-k size, noise level,
        failure probability per input, target radius, most samples per input, bounds,
        schedule, share of alpha on the final look, futility level (``None``: off).
        The looks are multiples of the block size of the inputs,
        :func:`sampler.streams.block_size` (128 samples for inputs of more than 512
        scalars, up to 4,096 for small ones): ``first_n`` is rounded up to one.
    progress : bool or tqdm-like, default False
        ``True`` shows a tqdm bar on stderr (rank 0 only): samples drawn, the look, and
        how many inputs are decided. An object with an ``update(k)`` method is told of
        every ``k`` samples this rank sends through the model.

    Returns
    -------
    topk_bounds.adaptive.AdaptiveResult
        Per input: ``certified``, the samples drawn ``n``, the ``counts``, the ``radius``
        at the look where it stopped, the number of ``looks`` and the ``decision``
        (``"certified"``, ``"futile"`` or ``"max_n"``). For every input,
        P(certified and the label's true top-k radius < ``radius``) <= ``alpha``, over
        the sampling of that input's noise; with ``noise="discrete"``, for the base
        classifier composed with rounding to the grid, every look's bounds widened by
        the sampler's total-variation ``delta`` (recorded in ``result.delta``).

    Raises
    ------
    ValueError
        For an invalid argument (before any sampling), naming it, its value and what is
        allowed; and as :func:`sampler.sample_counts` does for bad logits.
    ModelError, DistributedError
        As for :func:`sampler.sample_counts`.

    Notes
    -----
    *Which samples.* At look j an undecided input has counted samples ``0 .. n_{j-1} - 1``
    of its estimation stream; the look counts samples ``n_{j-1} .. n_j - 1``, i.e. its
    blocks ``n_{j-1} / b .. `` (b the block size) up to the block that ends at ``n_j``
    (shorter at ``max_n`` when ``b`` does not divide it, as in ``sample_counts``). The
    counts of an input that stopped after ``n`` samples are exactly
    ``sample_counts(..., n=n)`` of it (same seed and index), and they depend only on the
    seed, its index, the input and the device type: not on ``batch_size``, on which other
    inputs share a call, nor on the number of ranks.

    *The guarantee.* Each input's decisions rest on its own stream only, and the
    schedule and levels are fixed before any sample is drawn (:mod:`topk_bounds.adaptive`);
    so the union bound over looks holds for every input, however the inputs are grouped.

    *Distributed.* Every rank makes the same call; each look's counts are all-reduced,
    so every rank computes the same decisions and samples the same undecided inputs.

    *Not to be done with the counts:* certify them again at a fixed-n level
    (:func:`topk_bounds.certify`): they were gathered with optional stopping, which voids
    that guarantee.

    Examples
    --------
    A 1-D classifier that says 1 for positive inputs and 0 otherwise. At ``x = -2`` and
    ``x = 2`` (sigma 1) the right label wins about 97.7 % of the votes, a true radius of 2;
    at ``x = 0`` it is a coin toss, hopeless at radius 0.5.

    >>> import torch
    >>> from sampler import sample_adaptive, sample_counts
    >>> sign = lambda x: torch.cat([-x, x], dim=1)
    >>> x = torch.tensor([[-2.0], [0.0], [2.0]])
    >>> res = sample_adaptive(sign, x, [0, 0, 1], k=1, sigma=1.0, alpha=0.001, radius=0.5,
    ...                       max_n=100_000, batch_size=1000, seed=0)
    >>> res.decision.tolist(), res.n.tolist()  # a 1-D input has blocks of 4,096 samples
    (['certified', 'futile', 'certified'], [4096, 4096, 4096])
    >>> fixed = sample_counts(sign, x, sigma=1.0, n=4096, batch_size=1000, seed=0)
    >>> bool((res.counts == fixed).all())  # the first 4,096 samples of each stream
    True
    """
    request = prepare(model, inputs, sigma=sigma, batch_size=batch_size,
                      num_classes=num_classes, seed=seed, device=device, indices=indices,
                      progress=progress, distributed=distributed, timeout=timeout,
                      noise=noise, grid=grid)
    n_inputs = len(request.indices)
    labels = _labels(labels, n_inputs)
    block = request.block
    schedule = look_schedule(max_n, first_n=first_n, growth=growth, multiple_of=block)
    request.check(int(schedule[-1]))
    n_coords = max(1, math.prod(request.inputs.shape[1:]))
    delta = float(request.noise.header_fields(n_coords).get("delta", 0.0))

    drawn = np.zeros(n_inputs, dtype=np.int64)
    bar = _Bar(progress, request.rank, request.world_size, n_inputs, schedule.size)

    def draw(rows: np.ndarray, m: int) -> np.ndarray:
        start = int(drawn[rows[0]])
        if np.any(drawn[rows] != start):  # pragma: no cover - certify_adaptive's invariant
            raise RuntimeError("internal error: the undecided inputs drew different samples")
        bar.start_look(rows.size * m)
        if rows.size == n_inputs:
            part = request
        else:
            picked = torch.as_tensor(rows, device=request.inputs.device)
            part = dataclasses.replace(request, inputs=request.inputs.index_select(0, picked),
                                       indices=[request.indices[i] for i in rows.tolist()])
        part.progress = bar.sink
        counts = part.count(start + m, ESTIMATION, start)
        if request.num_classes is None:  # every later look gets the same columns
            request.num_classes = counts.shape[1]
        drawn[rows] += m
        return counts

    try:
        return certify_adaptive(draw, labels, k=k, sigma=request.sigma, alpha=alpha,
                                radius=radius, max_n=max_n, method=method, first_n=first_n,
                                growth=growth, final_share=final_share, futility=futility,
                                multiple_of=block, delta=delta, progress=bar.after_look)
    finally:
        bar.close()


def _labels(labels, n_inputs: int) -> np.ndarray:
    """One integer label per input (certify_adaptive checks the values)."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.shape != (n_inputs,):
        raise ValueError(f"labels must hold one label per input ({n_inputs}), got shape "
                         f"{arr.shape}")
    return arr


class _Bar:
    """The progress of :func:`sample_adaptive`: a tqdm bar of samples, the look, and the
    inputs decided; or the caller's tqdm-like object, told of every sample; or nothing."""

    def __init__(self, progress: Any, rank: int, world_size: int, n_inputs: int,
                 n_looks: int) -> None:
        self.bar = None
        self.world_size = world_size
        self.n_inputs, self.n_looks, self.look = n_inputs, n_looks, 0
        self.sink: Any = False
        if progress is True:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=0, unit="sample", unit_scale=True, file=sys.stderr,
                            disable=rank != 0, leave=False, dynamic_ncols=True)
            self.sink = self
        elif progress not in (False, None):
            self.sink = progress

    def start_look(self, samples: int) -> None:
        if self.bar is not None:
            self.look += 1
            self.bar.total += samples
            self.bar.set_description(f"look {self.look}/{self.n_looks}", refresh=False)

    def update(self, k: int) -> None:  # this rank's samples; ranks draw equal shares
        self.bar.update(k * self.world_size)

    def after_look(self, *, look: int, n: int, drawn: int, undecided: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"decided {self.n_inputs - undecided}/{self.n_inputs}",
                                     refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
