"""Monte Carlo counts of a torch classifier's predictions under Gaussian noise.

This is the sampling half of randomized smoothing certification: the smoothed classifier
of Cohen et al. [1]_ predicts the labels that the base classifier ``f`` returns most often
on ``x + sigma * eps`` with ``eps ~ N(0, I)``, and the top-k certificates of Jia et al. [2]_
are computed from how often each label comes out. :func:`sample_counts` produces those
counts; :mod:`topk_bounds` turns them into radii.

References
----------
.. [1] J. Cohen, E. Rosenfeld and J. Z. Kolter, "Certified adversarial robustness via
   randomized smoothing", ICML 2019.
.. [2] J. Jia, X. Cao, B. Wang and N. Z. Gong, "Certified robustness for top-k predictions
   against adversarial perturbations via randomized smoothing", ICLR 2020.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import math
import numbers
import sys
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from topk_bounds.limits import N_MAX

from . import collectives
from .collectives import DistributedError
from .noise import Noise, make_noise
from .streams import (ESTIMATION, block_size, check_blocks, fresh_entropy, global_indices,
                      input_words, schedule)

__all__ = ["sample_counts", "ModelError", "DistributedError"]

#: Most samples whose predictions :meth:`_Counter.add_passes` holds before counting them.
STAGED_SAMPLES = 4096


class ModelError(RuntimeError):
    """The model failed on a batch of noisy inputs, or returned logits without a class.

    Raised when the model raises (the original exception is chained) and when it returns
    non-finite logits for some samples (see :func:`sample_counts`): such samples are never
    counted.
    """


def sample_counts(model: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, *,
                  sigma: float, n: int, batch_size: int, num_classes: int | None = None,
                  seed: int | None = None, device: str | torch.device | None = None,
                  indices: Sequence[int] | None = None, progress: Any = False,
                  distributed: bool | None = None,
                  timeout: float | datetime.timedelta | None = None, noise: str = "gaussian",
                  grid: int | None = None) -> np.ndarray:
    """Count the base classifier's predictions on ``n`` Gaussian perturbations of each input.

    Row ``i`` of the result counts ``argmax(model(inputs[i] + sigma * eps))`` over ``n``
    independent draws ``eps ~ N(0, I)``: an exact multinomial sample with the class
    probabilities of the smoothed classifier of Cohen et al. [1]_, which is what the top-k
    certificates of Jia et al. [2]_ (:mod:`topk_bounds`) consume.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Maps a batch of shape ``(m, *inputs.shape[1:])`` to logits of shape ``(m, c)``.
        A module is put in eval mode for the call and every submodule's mode is restored
        afterwards; gradients are off (``torch.inference_mode``). A ``torch.compile``-d
        model works, and calling inside ``torch.autocast(...)`` runs the forward passes in
        reduced precision.
    inputs : torch.Tensor, shape (B, ...)
        ``B >= 1`` finite floating-point inputs, one per row of the result.
    sigma : float
        Standard deviation of the noise, finite and ``> 0``.
    n : int
        Samples per input, ``1 <= n <= topk_bounds.limits.N_MAX``, and at most ``2**32``
        noise blocks per input (:func:`sampler.streams.check_blocks`: ``n <= 5.4e11`` for
        inputs of more than 512 scalars).
    batch_size : int
        Noisy samples per forward pass, ``>= 1``. Inputs with ``n < batch_size`` share
        forward passes. Memory is one batch plus one block of noisy inputs (at most a few
        MiB, :func:`sampler.streams.block_size`) and the ``(B, num_classes)`` counts: it
        does not grow with ``n``.
    num_classes : int, optional
        Columns of the result, at least the model's output width (its default).
    seed : int, optional
        Seed ``>= 0``. ``None`` draws fresh entropy from the operating system.
    device : str or torch.device, optional
        Where noise is drawn and counted; default the device of the model's first parameter
        or buffer (the inputs' device for a model without any). The model is not moved.
    indices : sequence of int, optional
        The global index of each input (default ``0 .. B-1``), each in ``[0, 2**63)``; it
        selects the input's random stream. Pass the row numbers of a larger data set to
        sample it in pieces.
    progress : bool or tqdm-like, default False
        ``True`` shows a tqdm bar on stderr (rank 0 only); an object with an ``update(k)``
        method is told of every ``k`` samples this rank sends through the model.
    distributed : bool, optional
        Split the samples across the ranks of ``torch.distributed`` and all-reduce the
        counts, so that every rank returns the same totals. Default: when
        ``torch.distributed`` is initialized. Every rank must make the same call.
    timeout : float or datetime.timedelta, optional
        Distributed mode only: the longest time in seconds that a rank waits for the others
        in each collective; beyond it the call raises :class:`DistributedError` (default:
        the process group's own timeout, which bounds every collective too). With gloo,
        give ``init_process_group`` the same timeout: gloo abandons a collective only at
        the process group's timeout, and until then the process cannot exit.
    noise : {"gaussian", "discrete"}, default "gaussian"
        ``"gaussian"`` adds float Gaussian noise, which is not exactly Gaussian (Voráček
        and Hein, ICLR 2023). ``"discrete"`` needs float32 or float64 inputs exactly on
        the grid ``i / grid`` and draws exact integer offsets
        (:class:`sampler.discrete.DiscreteGaussianNoise`): the counts are those of the
        model composed with rounding to the grid under real Gaussian noise, up to a
        total-variation distance ``delta`` per sample that certification must account
        for (``docs/soundness.md``).
    grid : int, optional
        Only with ``noise="discrete"``: the inputs' grid, an integer ``>= 1`` (default 255,
        8-bit images scaled to [0, 1]).

    Returns
    -------
    ndarray of int64, shape (B, num_classes)
        Counts; every row sums to ``n``.

    Raises
    ------
    ValueError
        For an invalid argument, naming it, its value and what is allowed (an input that
        holds NaN or inf is named by its index); for logits that are not of shape
        ``(m, c)`` or that are wider than ``num_classes``.
    ModelError
        If the model raises (the original exception is chained), or if it returns
        non-finite logits for any sample; the message names the first such input by its
        global index and says how many of its ``n`` samples were affected.
    DistributedError
        If a collective does not complete within ``timeout`` or a peer rank is gone.

    Notes
    -----
    *Samples without a class are never counted.* A sample is counted as the class of its
    largest logit only if that largest logit is finite: a row holding a NaN anywhere (torch
    propagates NaN through ``max``), or whose largest entry is ``+inf`` (an overflow, as
    float16/bfloat16 autocast can produce; several ``+inf`` would tie arbitrarily) or
    ``-inf`` (every entry underflowed), raises :class:`ModelError` instead. Entries of
    ``-inf`` below a finite maximum (masked classes) are fine. The check runs on the device
    within the same scatter-add that counts the classes, so it costs no extra host
    synchronisation.

    *Reproducibility.* Input ``i``'s noise is cut into blocks, each drawn whole on
    ``device`` by a generator seeded from ``(seed, indices[i], block)``; the block length
    depends only on the number of scalars per input (:mod:`sampler.streams`). A row
    therefore depends only on ``seed``, ``indices[i]``, ``n``, the input and the device
    type: not on ``batch_size``, on the other inputs of the call, nor on the number of
    ranks. (The forward pass itself may round differently for different batch sizes, which
    can flip a prediction that sits exactly on a decision boundary.)

    *Cost.* Noise is drawn and predictions are counted on ``device`` (a scatter-add into a
    ``(B, num_classes + 1)`` tensor whose last column counts the samples without a class),
    and the host waits for the device twice per call: once to check that the inputs are
    finite and once when the counts are copied back (in distributed mode also once for a
    small consistency check). Full batches of one input are counted together, a few
    thousand samples at a time, so that a cheap model does not pay a scatter per batch.

    *Distributed.* Rank ``r`` of ``W`` draws the blocks whose number within the call is
    ``r`` modulo ``W``; ``all_reduce(SUM)`` adds the counts. With the nccl backend the
    counts must live on a CUDA device. With ``seed=None`` rank 0's entropy is broadcast.

    References
    ----------
    .. [1] J. Cohen, E. Rosenfeld and J. Z. Kolter, "Certified adversarial robustness via
       randomized smoothing", ICML 2019.
    .. [2] J. Jia, X. Cao, B. Wang and N. Z. Gong, "Certified robustness for top-k
       predictions against adversarial perturbations via randomized smoothing", ICLR 2020.

    Examples
    --------
    A 1-D classifier that says 1 for positive inputs and 0 otherwise: at ``x = 0`` both
    labels are equally likely.

    >>> import torch
    >>> from sampler import sample_counts
    >>> sign = lambda x: torch.cat([-x, x], dim=1)
    >>> counts = sample_counts(sign, torch.zeros(2, 1), sigma=1.0, n=1000, batch_size=256,
    ...                        seed=0)
    >>> counts.shape, counts.sum(axis=1).tolist()
    ((2, 2), [1000, 1000])
    >>> bool((abs(counts[:, 1] - 500) < 100).all())
    True
    >>> same = sample_counts(sign, torch.zeros(2, 1), sigma=1.0, n=1000, batch_size=7, seed=0)
    >>> bool((same == counts).all())  # the batch size does not change the counts
    True

    A model that returns NaN has no prediction to count:

    >>> broken = lambda x: torch.full((len(x), 2), float("nan"))
    >>> sample_counts(broken, torch.zeros(1, 1), sigma=1.0, n=10, batch_size=4, seed=0)
    Traceback (most recent call last):
    ...
    sampler.core.ModelError: the model returned non-finite logits ... for 10 of the 10 samples of input 0; ...
    """
    request = prepare(model, inputs, sigma=sigma, batch_size=batch_size,
                      num_classes=num_classes, seed=seed, device=device, indices=indices,
                      progress=progress, distributed=distributed, timeout=timeout,
                      noise=noise, grid=grid)
    return request.count(sample_size("n", n), ESTIMATION)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def sample_size(name: str, value: Any) -> int:
    """A number of samples per input: an integer in ``1 .. N_MAX``."""
    value = _positive_int(name, value)
    if value > N_MAX:
        raise ValueError(f"{name} must be at most {N_MAX:.0e} (topk_bounds.limits.N_MAX, the "
                         f"largest n the bounds support), got {value}")
    return value


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


@dataclass
class Request:
    """A validated sampling request (model, inputs on the device, options). Internal."""

    model: Callable[[torch.Tensor], torch.Tensor]
    inputs: torch.Tensor
    sigma: float
    noise: Noise
    batch_size: int
    num_classes: int | None
    entropy: int
    device: torch.device
    indices: list[int]
    progress: Any
    rank: int
    world_size: int
    timeout: datetime.timedelta | None = None

    @property
    def block(self) -> int:
        """Samples per noise block for these inputs (:func:`sampler.streams.block_size`)."""
        return block_size(max(1, math.prod(self.inputs.shape[1:])))

    def check(self, n: int) -> None:
        """Raise ValueError if ``n`` samples per input need too many noise blocks."""
        check_blocks(n, self.block)

    def count(self, n: int, stream: int, start: int = 0) -> np.ndarray:
        """``(B, C)`` counts of samples ``start .. n - 1`` of each input's stream ``stream``.

        ``start`` (a multiple of :attr:`block` below ``n``; 0 by default) lets an adaptive
        run draw the blocks after those it already counted: the counts of ``[0, s)`` and of
        ``[s, n)`` add up to exactly the counts of ``n`` samples.
        """
        self.check(n)
        if start % self.block or not 0 <= start < n:
            raise ValueError(f"start must be a multiple of the block size {self.block} in "
                             f"0..{n - 1}, got {start}")
        with _evaluating(self.model), torch.inference_mode():
            with _progress_bar(self.progress, self._local_total(n - start), self.rank) as bar:
                counts, width = self._count_local(n, stream, bar, start)
            if self.world_size > 1:
                counts = self._all_reduce(counts, width, n, start)
            table = counts.view(len(self.indices), -1).cpu().numpy()
        return self._checked(table, n - start)

    def _checked(self, table: np.ndarray, n: int) -> np.ndarray:
        """The class columns of ``table``; its last column (samples without a class) must be 0."""
        without = table[:, -1]
        if without.any():
            bad = np.flatnonzero(without)
            first = int(bad[0])
            others = (f"; {len(bad) - 1} more input(s) of this call too" if len(bad) > 1
                      else "")
            raise ModelError(
                f"the model returned non-finite logits (a NaN, or a largest logit of +inf or "
                f"-inf) for {int(without[first])} of the {n} samples of input "
                f"{self.indices[first]}{others}; such samples have no class and are never "
                "counted (reduced-precision autocast can overflow: check the model)")
        counts = np.ascontiguousarray(table[:, :-1])
        if not (counts.sum(axis=1) == n).all():  # pragma: no cover - an internal invariant
            raise RuntimeError(f"internal error: a row of counts does not sum to n={n}")
        return counts

    def _local_total(self, n: int) -> int:
        return -(-len(self.indices) * n // self.world_size)

    def _count_local(self, n: int, stream: int, bar,
                     start: int = 0) -> tuple[torch.Tensor | None, int]:
        """This rank's counts (flat, on the device, one extra column) and the output width."""
        x, device, noise = self.inputs, self.device, self.noise
        shape = tuple(x.shape[1:])
        size = self.block
        n_inputs = len(self.indices)
        capacity = min(self.batch_size, n_inputs * (n - start))
        buf = _allocate((capacity, *shape), x.dtype, device, "batch_size", self.batch_size)
        owner = torch.empty(capacity, dtype=torch.int64, device=device)
        spill: torch.Tensor | None = None  # one whole block, when it does not fit in buf
        passes_of_spill: list[torch.Tensor] = []  # its full batches, for aligned blocks
        generator = torch.Generator(device=device)
        counter = _Counter(self.model, n_inputs, self.num_classes, capacity, device)
        words = input_words(self.entropy, stream, self.indices)
        fill = 0  # samples waiting in buf
        single = -1  # the input of every sample in buf[:fill], or -1 once they are mixed
        fill_, seed_, add_passes = noise.fill_, generator.manual_seed, counter.add_passes
        x_pos, x_row = -1, None

        for plan in schedule(words, n, size, self.rank, self.world_size, start):
            for pos, m, seed in zip(plan.pos, plan.size, plan.seed):
                seed_(seed)
                if pos != x_pos:
                    x_pos, x_row = pos, x[pos]
                if fill + m <= capacity:  # the block fits: draw it in place
                    fill_(buf[fill:fill + m], x_row, generator)
                    if fill == 0:
                        single = pos
                    elif single != pos:
                        if single >= 0:
                            owner[:fill].fill_(single)
                            single = -1
                        owner[fill:fill + m].fill_(pos)
                    fill += m
                    if fill == capacity:
                        counter.add(buf, single, owner)
                        bar.update(capacity)
                        fill = 0
                    continue
                if spill is None:
                    spill = _allocate((size, *shape), x.dtype, device, "batch_size",
                                      self.batch_size)
                    passes_of_spill = [spill[k:k + capacity]
                                       for k in range(0, size - capacity + 1, capacity)]
                drawn = spill if m == size else spill[:m]
                fill_(drawn, x_row, generator)
                done = 0
                if fill:  # complete the waiting batch (fill + m > capacity here)
                    done = capacity - fill
                    buf[fill:].copy_(drawn[:done])
                    if single != pos:
                        if single >= 0:
                            owner[:fill].fill_(single)
                        owner[fill:].fill_(pos)
                        single = -1
                    counter.add(buf, single, owner)
                    bar.update(capacity)
                    fill = 0
                passes = (m - done) // capacity
                if passes:  # whole passes straight from the block: no copy
                    if done == 0:
                        add_passes(passes_of_spill if passes == len(passes_of_spill)
                                   else passes_of_spill[:passes], pos)
                    else:
                        add_passes([drawn[k:k + capacity] for k in
                                    range(done, done + passes * capacity, capacity)], pos)
                    bar.update(passes * capacity)
                    done += passes * capacity
                if done < m:  # the rest starts the next batch
                    fill = m - done
                    buf[:fill].copy_(drawn[done:])
                    single = pos
        if fill:
            counter.add(buf[:fill], single, owner[:fill])
            bar.update(fill)
        counter.flush()
        return counter.counts, counter.width

    def _all_reduce(self, counts: torch.Tensor | None, width: int, n: int,
                    start: int = 0) -> torch.Tensor:
        import torch.distributed as dist

        n_inputs = len(self.indices)
        columns = self.num_classes or width
        # One small collective (max of v and of -v, i.e. max and min) checks that every rank
        # made the same call, and tells a rank that drew no block (fewer blocks than ranks)
        # how wide the counts are. Every rank sees the same extremes, so all raise together.
        mask = 2**62 - 1
        noise_key = zlib.crc32(repr(self.noise).encode())  # kind, sigma and grid; no str hash:
        same = torch.tensor([n_inputs, n, start, hash(tuple(self.indices)) & mask,  # it is salted
                             self.entropy & mask, round(self.sigma * 2**40) & mask, noise_key],
                            dtype=torch.int64, device=self.device)
        checksum = self.inputs.sum(dtype=torch.float64).reshape(1).view(torch.int64)
        same = torch.cat([same, checksum])
        width_t = torch.tensor([columns], dtype=torch.int64, device=self.device)
        meta = torch.cat([same, -same, width_t])
        collectives.all_reduce(meta, dist.ReduceOp.MAX, "the consistency check of the ranks' "
                               "calls", self.timeout)
        values = meta.tolist()
        k = same.numel()
        if values[:k] != [-v for v in values[k:2 * k]]:
            raise ValueError("every rank must call sample_counts with the same inputs, "
                             "indices, n, sigma, noise and seed; the ranks' calls differ (this rank "
                             f"has {n_inputs} inputs and n={n})")
        columns_max = values[-1]
        if counts is None:
            counts = torch.zeros(n_inputs * (columns_max + 1), dtype=torch.int64,
                                 device=self.device)
        elif columns != columns_max:
            raise ValueError(f"every rank must see the same model output width; this rank "
                             f"has {columns}, another {columns_max}")
        return collectives.all_reduce(counts, dist.ReduceOp.SUM, "the all-reduce of the counts",
                                      self.timeout)


def _allocate(shape, dtype, device, name: str, value: int) -> torch.Tensor:
    """``torch.empty(shape)``; a failed allocation is a ValueError naming the argument."""
    try:
        return torch.empty(shape, dtype=dtype, device=device)
    except (RuntimeError, MemoryError) as exc:
        raise ValueError(f"{name}={value}: cannot allocate the noisy batch of shape "
                         f"{tuple(shape)} ({dtype}) on {device}: {_first_line(exc)[:200]}"
                         ) from None


class _Counter:
    """Runs the forward passes and accumulates the predictions on the device.

    The counts are a flat ``(n_rows * (columns + 1))`` int64 tensor: row ``i`` holds the
    class counts of input ``i``, then the number of its samples without a class (whose
    largest logit is not finite). A row with any sample without a class is never
    returned (:meth:`Request._checked` raises), so :meth:`flush` need not take such
    samples out of the class columns.
    """

    def __init__(self, model, n_rows: int, num_classes: int | None, capacity: int,
                 device: torch.device) -> None:
        self.model = model
        self.n_rows = n_rows
        self.num_classes = num_classes
        self.capacity = capacity
        self.device = device
        self.ones = torch.ones(capacity, dtype=torch.int64, device=device)
        self.counts: torch.Tensor | None = None
        self.rows: torch.Tensor | None = None  # counts viewed as (n_rows, stride)
        self.width = -1  # the model's output width, from the first logits
        self.without = 0  # the column of the samples without a class
        self.stride = 0
        self.full = None  # the shape of the logits of a full batch, once known
        self.row_pos = -1
        self.row: torch.Tensor | None = None  # rows[row_pos]
        self.row_without: torch.Tensor | None = None  # its last column
        self.group = max(1, STAGED_SAMPLES // capacity)  # passes that flush() counts at once
        self.staged_pos = -1
        self.staged: list[tuple[torch.Tensor, torch.Tensor]] = []  # (largest, classes)
        self.staged_ones: torch.Tensor | None = None

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """The model's validated logits on ``batch``."""
        try:
            logits = self.model(batch)
        except (Exception, SystemExit) as exc:
            raise self._failed(batch, exc) from exc
        return self._validated(logits, batch.shape[0])

    @staticmethod
    def _failed(batch: torch.Tensor, exc: BaseException) -> ModelError:
        return ModelError(f"the model failed on a batch of shape {tuple(batch.shape)}: "
                          f"{type(exc).__name__}: {_first_line(exc)}")

    def _validated(self, logits, m: int) -> torch.Tensor:
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != m:
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(f"the model must return logits of shape ({m}, num_classes) for a "
                             f"batch of {m}, got {got}")
        if logits.shape[1] != self.width:
            self._first(logits)
        return logits

    def _first(self, logits: torch.Tensor) -> None:
        """Validate the first logits and allocate the counts (or report a changed width)."""
        width = int(logits.shape[1])
        if self.counts is not None:
            raise ValueError(f"the model's output width changed from {self.width} to {width}")
        if logits.is_complex() or logits.dtype == torch.bool:
            raise ValueError(f"the model must return real-valued logits, got dtype "
                             f"{logits.dtype}")
        columns = self.num_classes or width
        if width < 1 or width > columns:
            raise ValueError(f"num_classes must be at least the model's output width "
                             f"{width}, got {columns}")
        self.width = width
        self.without = columns
        self.stride = columns + 1
        self.full = torch.Size((self.capacity, width))
        self.counts = torch.zeros(self.n_rows * self.stride, dtype=torch.int64,
                                  device=self.device)
        self.rows = self.counts.view(self.n_rows, self.stride)

    def _classes(self, values: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
        """``predictions``, with the extra column wherever the largest logit is not finite."""
        # max() is NaN for a row holding any NaN; v - v is NaN exactly when v is not finite.
        predictions.masked_fill_((values - values).isnan(), self.without)
        if predictions.device != self.device:
            predictions = predictions.to(self.device)
        return predictions

    def _row(self, pos: int) -> torch.Tensor:
        """Row ``pos`` of the counts (and, as ``row_without``, its last column)."""
        if pos != self.row_pos:
            self.row_pos, self.row = pos, self.rows[pos]
            self.row_without = self.row[self.without:]
        return self.row

    def add(self, batch: torch.Tensor, single: int, owner: torch.Tensor) -> None:
        """Count the predictions on ``batch``: all of input ``single``, or per ``owner``."""
        m = batch.shape[0]
        if single >= 0 and m == self.capacity:
            self.add_passes((batch,), single)
            return
        values, predictions = self._forward(batch).max(1)
        predictions = self._classes(values, predictions)
        ones = self.ones if m == self.capacity else self.ones[:m]
        if single >= 0:
            self._row(single).scatter_add_(0, predictions, ones)
        else:
            self.counts.scatter_add_(0, owner[:m] * self.stride + predictions, ones)

    def add_passes(self, batches: Sequence[torch.Tensor], pos: int) -> None:
        """Count full batches of noisy copies of input ``pos``.

        Each batch is reduced to its largest logits and their classes at once (so a model
        that reuses its output buffer, as CUDA graphs do, is safe); these are kept, and
        checked and counted together for about :attr:`group` batches of the same input:
        for a cheap model the per-batch check and scatter are a visible share of the time.
        """
        if pos != self.staged_pos:
            self.flush()
            self.staged_pos = pos
        model, full, tensor = self.model, self.full, torch.Tensor
        staged = self.staged
        for batch in batches:
            try:
                logits = model(batch)
            except (Exception, SystemExit) as exc:
                raise self._failed(batch, exc) from exc
            if type(logits) is not tensor or logits.shape != full:
                logits = self._validated(logits, self.capacity)
                full = self.full
            staged.append(logits.max(1))  # (largest logits, their classes)
        if len(staged) >= self.group:
            self.flush()

    def flush(self) -> None:
        """Count the passes staged by :meth:`add_passes`."""
        staged = self.staged
        if not staged:
            return
        k = len(staged) * self.capacity
        ones = self.staged_ones
        if ones is None or ones.shape[0] < k:
            ones = self.staged_ones = torch.ones(k, dtype=torch.int64, device=self.device)
        if ones.shape[0] != k:
            ones = ones[:k]
        row = self._row(self.staged_pos)
        try:
            largest = torch.cat([values for values, _ in staged])
            predicted = torch.cat([classes for _, classes in staged])
        except RuntimeError:  # logits on different devices: count the passes one by one
            for values, classes in staged:
                row.scatter_add_(0, self._classes(values, classes), self.ones)
        else:
            # Every staged sample is input staged_pos's, so its samples without a class
            # need only be counted (v - v is NaN, so nonzero, exactly when v is not
            # finite): such a row is never returned, whatever its class columns say.
            without = torch.count_nonzero(largest - largest)
            if predicted.device != self.device:
                predicted, without = predicted.to(self.device), without.to(self.device)
            row.scatter_add_(0, predicted, ones)
            self.row_without.add_(without)
        staged.clear()


@contextlib.contextmanager
def _evaluating(model) -> Iterator[None]:
    """Eval mode for the duration; every submodule's own mode is restored afterwards."""
    if not isinstance(model, torch.nn.Module):
        yield
        return
    training = [module for module in model.modules() if module.training]
    if not training:  # already in eval mode: nothing to change or restore
        yield
        return
    model.eval()
    try:
        yield
    finally:
        for module in training:  # eval() cleared exactly these
            module.training = True


class _NoBar:
    def update(self, k: int) -> None:
        pass


@contextlib.contextmanager
def _progress_bar(progress: Any, total: int, rank: int) -> Iterator[Any]:
    if progress is False or progress is None:
        yield _NoBar()
    elif progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="sample", unit_scale=True, file=sys.stderr,
                   disable=rank != 0, leave=False, dynamic_ncols=True)
        try:
            yield bar
        finally:
            bar.close()
    else:
        yield progress


def prepare(model, inputs, *, sigma, batch_size, num_classes=None, seed=None, device=None,
            indices=None, progress=False, distributed=None, timeout=None, noise="gaussian",
            grid=None) -> Request:
    """Validate the arguments shared by the sampling functions (see :func:`sample_counts`)."""
    if not callable(model):
        raise ValueError(f"model must be a torch.nn.Module or a callable, got "
                         f"{type(model).__name__}")
    if not isinstance(inputs, torch.Tensor):
        raise ValueError(f"inputs must be a torch.Tensor of shape (B, ...), got "
                         f"{type(inputs).__name__}")
    if inputs.ndim < 1 or inputs.shape[0] < 1:
        raise ValueError(f"inputs must have shape (B, ...) with B >= 1, got "
                         f"{tuple(inputs.shape)}")
    if not inputs.is_floating_point():
        raise ValueError(f"inputs must be a floating-point tensor, got dtype {inputs.dtype}")
    if inputs.device.type == "meta":
        raise ValueError("inputs must hold data, got a tensor on the 'meta' device")
    if isinstance(sigma, (bool, np.bool_)) or not isinstance(sigma, numbers.Real) \
            or not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    noise = make_noise(noise, float(sigma), grid)
    batch_size = _positive_int("batch_size", batch_size)
    if num_classes is not None:
        num_classes = _positive_int("num_classes", num_classes)
    if seed is not None and (isinstance(seed, (bool, np.bool_))
                             or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")
    if not (isinstance(progress, bool) or progress is None or hasattr(progress, "update")):
        raise ValueError(f"progress must be a bool or have an update(k) method, got "
                         f"{type(progress).__name__}")
    if distributed not in (None, True, False):
        raise ValueError(f"distributed must be None, True or False, got {distributed!r}")
    timeout = collectives.as_timeout(timeout)
    index_list = global_indices(indices, int(inputs.shape[0]))
    device = _device(device, model, inputs)
    noise.check_inputs(inputs)  # first: discrete noise names the element, not just the row
    _check_finite(inputs, index_list)

    rank, world_size = 0, 1
    if distributed is not False:
        import torch.distributed as dist

        initialized = dist.is_available() and dist.is_initialized()
        if distributed and not initialized:
            raise ValueError("distributed=True needs torch.distributed to be initialized "
                             "(launch with torchrun and call init_process_group)")
        if initialized:
            rank, world_size = dist.get_rank(), dist.get_world_size()
    entropy = int(seed) if seed is not None else fresh_entropy()
    if seed is None and world_size > 1:
        entropy = collectives.broadcast_int(entropy, 128, device, "the broadcast of rank 0's "
                                            "seed", timeout)
    return Request(model=model, inputs=inputs.detach().to(device), sigma=float(sigma),
                   noise=noise, batch_size=batch_size, num_classes=num_classes,
                   entropy=entropy, device=device, indices=index_list, progress=progress,
                   rank=rank, world_size=world_size, timeout=timeout)


def _device(device, model, inputs: torch.Tensor) -> torch.device:
    """The validated device: one that can hold data and copy it to the host."""
    try:
        result = torch.device(device) if device is not None else _model_device(model, inputs)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must name a torch device, got {device!r} ({exc})") from None
    if result.type == "meta":
        raise ValueError(f"device must be one that holds data, got {str(result)!r} (meta "
                         "tensors have shapes but no values)")
    if result not in _USABLE:
        try:
            torch.zeros(1, device=result).cpu()
        except Exception as exc:  # e.g. AssertionError: Torch not compiled with CUDA enabled
            raise ValueError(f"device {str(result)!r} cannot be used here: "
                             f"{_first_line(exc)[:200]}") from None
        _USABLE.add(result)
    return result


#: Devices that have held a tensor and copied it to the host in this process.
_USABLE: set[torch.device] = set()


def _check_finite(inputs: torch.Tensor, indices: list[int]) -> None:
    """Every input must be finite: NaN + noise is NaN, and its logits would be too."""
    finite = torch.isfinite(inputs.detach().reshape(len(inputs), -1)).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        more = f" ({len(bad) - 1} more too)" if len(bad) > 1 else ""
        raise ValueError(f"inputs must be finite; input {indices[bad[0]]} (row {bad[0]} of "
                         f"inputs) holds NaN or inf{more}")


def _model_device(model, inputs: torch.Tensor) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            return tensor.device
    return inputs.device
