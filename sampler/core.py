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
import itertools
import math
import numbers
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from .noise import Noise, make_noise
from .streams import (BLOCK_SIZE, ESTIMATION, InputStream, blocks_for_rank, fresh_entropy,
                      global_indices)

__all__ = ["sample_counts", "ModelError"]


class ModelError(RuntimeError):
    """The model raised on a batch of noisy inputs; the original exception is chained."""


def sample_counts(model: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, *,
                  sigma: float, n: int, batch_size: int, num_classes: int | None = None,
                  seed: int | None = None, device: str | torch.device | None = None,
                  indices: Sequence[int] | None = None, progress: Any = False,
                  distributed: bool | None = None, noise: str = "gaussian",
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
        ``B >= 1`` floating-point inputs, one per row of the result.
    sigma : float
        Standard deviation of the noise, finite and ``> 0``.
    n : int
        Samples per input, ``>= 1``.
    batch_size : int
        Noisy samples per forward pass, ``>= 1``. Inputs with ``n < batch_size`` share
        forward passes. Memory is one batch plus one block of
        :data:`~sampler.streams.BLOCK_SIZE` noisy inputs and the ``(B, num_classes)``
        counts: it does not grow with ``n``.
    num_classes : int, optional
        Columns of the result, at least the model's output width (its default).
    seed : int, optional
        Seed ``>= 0``. ``None`` draws fresh entropy from the operating system.
    device : str or torch.device, optional
        Where noise is drawn and counted; default the device of the model's first parameter
        or buffer (the inputs' device for a model without any). The model is not moved.
    indices : sequence of int, optional
        The global index of each input (default ``0 .. B-1``); it selects the input's
        random stream. Pass the row numbers of a larger data set to sample it in pieces.
    progress : bool or tqdm-like, default False
        ``True`` shows a tqdm bar on stderr (rank 0 only); an object with an ``update(k)``
        method is told of every ``k`` samples this rank sends through the model.
    distributed : bool, optional
        Split the samples across the ranks of ``torch.distributed`` and all-reduce the
        counts, so that every rank returns the same totals. Default: when
        ``torch.distributed`` is initialized. Every rank must make the same call.
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
        For an invalid argument, naming it, its value and what is allowed; for logits
        that are not of shape ``(m, c)`` or that are wider than ``num_classes``.
    ModelError
        If the model raises; the original exception is chained.

    Notes
    -----
    *Reproducibility.* Input ``i``'s noise is cut into blocks of
    :data:`sampler.streams.BLOCK_SIZE` samples, each drawn on ``device`` by a generator
    seeded from ``(seed, indices[i], block)`` (:mod:`sampler.streams`). A row therefore
    depends only on ``seed``, ``indices[i]``, ``n``, the input and the device type: not on
    ``batch_size``, on the other inputs of the call, nor on the number of ranks. (The
    forward pass itself may round differently for different batch sizes, which can flip a
    prediction that sits exactly on a decision boundary.)

    *Cost.* Noise is drawn and predictions are counted on ``device`` (a scatter-add into a
    ``(B, num_classes)`` tensor), and the host waits for the device once, when the counts
    are copied back (in distributed mode also once for a small consistency check).

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
    """
    request = prepare(model, inputs, sigma=sigma, batch_size=batch_size,
                      num_classes=num_classes, seed=seed, device=device, indices=indices,
                      progress=progress, distributed=distributed, noise=noise, grid=grid)
    return request.count(_positive_int("n", n), ESTIMATION)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


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

    def count(self, n: int, stream: int) -> np.ndarray:
        """``(B, C)`` counts of ``n`` samples per input from random stream ``stream``."""
        with _evaluating(self.model), torch.inference_mode():
            with _progress_bar(self.progress, self._local_total(n), self.rank) as bar:
                counts, width = self._count_local(n, stream, bar)
            if self.world_size > 1:
                counts = self._all_reduce(counts, width, n)
            return counts.view(len(self.indices), -1).cpu().numpy()

    def _local_total(self, n: int) -> int:
        return -(-len(self.indices) * n // self.world_size)

    def _count_local(self, n: int, stream: int, bar) -> tuple[torch.Tensor | None, int]:
        """This rank's counts (flat, on the device) and the model's output width."""
        x, model, device = self.inputs, self.model, self.device
        shape = tuple(x.shape[1:])
        capacity = min(self.batch_size, len(self.indices) * n)
        buf = torch.empty((capacity, *shape), dtype=x.dtype, device=device)
        owner = torch.empty(capacity, dtype=torch.int64, device=device)
        ones = torch.ones(capacity, dtype=torch.int64, device=device)
        spill: torch.Tensor | None = None  # a block that does not fit in what is left of buf
        generator = torch.Generator(device=device)
        streams: dict[int, InputStream] = {}
        state = _Counter(model, len(self.indices), self.num_classes)
        fill = 0

        def flush() -> None:
            state.add(buf[:fill], owner[:fill], ones[:fill])
            bar.update(fill)

        for block in blocks_for_rank(len(self.indices), n, self.rank, self.world_size):
            stream_of = streams.get(block.pos)
            if stream_of is None:
                streams.clear()  # inputs come in order: keep only the current one
                stream_of = streams[block.pos] = InputStream(self.entropy, stream,
                                                             self.indices[block.pos])
            generator.manual_seed(stream_of.block_seed(block.index))
            if fill + block.size <= capacity:  # the common case: draw in place
                self.noise.fill_(buf[fill:fill + block.size], x[block.pos], generator)
                owner[fill:fill + block.size].fill_(block.pos)
                fill += block.size
                if fill == capacity:
                    flush()
                    fill = 0
                continue
            if spill is None:
                spill = torch.empty((BLOCK_SIZE, *shape), dtype=x.dtype, device=device)
            drawn = spill[:block.size]
            self.noise.fill_(drawn, x[block.pos], generator)
            done = 0
            while done < block.size:
                if fill == 0 and block.size - done >= capacity:  # a whole pass: no copy
                    owner.fill_(block.pos)
                    state.add(drawn[done:done + capacity], owner, ones)
                    bar.update(capacity)
                    done += capacity
                    continue
                take = min(block.size - done, capacity - fill)
                buf[fill:fill + take].copy_(drawn[done:done + take])
                owner[fill:fill + take].fill_(block.pos)
                fill += take
                done += take
                if fill == capacity:
                    flush()
                    fill = 0
        if fill:
            flush()
        return state.counts, state.width

    def _all_reduce(self, counts: torch.Tensor | None, width: int, n: int) -> torch.Tensor:
        import torch.distributed as dist

        n_inputs = len(self.indices)
        columns = self.num_classes or width
        # One small collective (max of v and of -v, i.e. max and min) checks that every rank
        # made the same call, and tells a rank that drew no block (fewer blocks than ranks)
        # how wide the counts are. Every rank sees the same extremes, so all raise together.
        mask = 2**62 - 1
        same = torch.tensor([n_inputs, n, hash(tuple(self.indices)) & mask,
                             self.entropy & mask, round(self.sigma * 2**40) & mask],
                            dtype=torch.int64, device=self.device)
        checksum = self.inputs.sum(dtype=torch.float64).reshape(1).view(torch.int64)
        same = torch.cat([same, checksum])
        width_t = torch.tensor([columns], dtype=torch.int64, device=self.device)
        meta = torch.cat([same, -same, width_t])
        dist.all_reduce(meta, op=dist.ReduceOp.MAX)
        values = meta.tolist()
        k = same.numel()
        if values[:k] != [-v for v in values[k:2 * k]]:
            raise ValueError("every rank must call sample_counts with the same inputs, "
                             "indices, n, sigma and seed; the ranks' calls differ (this rank "
                             f"has {n_inputs} inputs and n={n})")
        columns_max = values[-1]
        if counts is None:
            counts = torch.zeros(n_inputs * columns_max, dtype=torch.int64, device=self.device)
        elif columns != columns_max:
            raise ValueError(f"every rank must see the same model output width; this rank "
                             f"has {columns}, another {columns_max}")
        dist.all_reduce(counts, op=dist.ReduceOp.SUM)
        return counts


class _Counter:
    """Runs the forward passes and accumulates the predictions on the device."""

    def __init__(self, model, n_rows: int, num_classes: int | None) -> None:
        self.model = model
        self.n_rows = n_rows
        self.num_classes = num_classes
        self.columns = 0
        self.counts: torch.Tensor | None = None
        self.width = 0

    def add(self, batch: torch.Tensor, owner: torch.Tensor, ones: torch.Tensor) -> None:
        try:
            logits = self.model(batch)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ModelError(f"the model failed on a batch of shape {tuple(batch.shape)}: "
                             f"{type(exc).__name__}: {first}") from exc
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2 \
                or logits.shape[0] != batch.shape[0]:
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(f"the model must return logits of shape ({batch.shape[0]}, "
                             f"num_classes) for a batch of {batch.shape[0]}, got {got}")
        width = int(logits.shape[1])
        if self.counts is None:
            columns = self.num_classes or width
            if width < 1 or width > columns:
                raise ValueError(f"num_classes must be at least the model's output width "
                                 f"{width}, got {columns}")
            self.width = width
            self.counts = torch.zeros(self.n_rows * columns, dtype=torch.int64,
                                      device=owner.device)
            self.columns = columns
        elif width != self.width:
            raise ValueError(f"the model's output width changed from {self.width} to {width}")
        predictions = logits.argmax(dim=1)
        if predictions.device != owner.device:
            predictions = predictions.to(owner.device)
        self.counts.scatter_add_(0, owner * self.columns + predictions, ones)


@contextlib.contextmanager
def _evaluating(model) -> Iterator[None]:
    """Eval mode for the duration; every submodule's own mode is restored afterwards."""
    if not isinstance(model, torch.nn.Module):
        yield
        return
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


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
            indices=None, progress=False, distributed=None, noise="gaussian",
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
    if isinstance(sigma, (bool, np.bool_)) or not isinstance(sigma, numbers.Real) \
            or not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    noise_model = make_noise(noise, float(sigma), grid)
    noise_model.check_inputs(inputs)
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
    index_list = global_indices(indices, int(inputs.shape[0]))
    try:
        device = torch.device(device) if device is not None else _model_device(model, inputs)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must name a torch device, got {device!r} ({exc})") from None

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
        import torch.distributed as dist

        shared = [entropy]
        dist.broadcast_object_list(shared, src=0)
        entropy = shared[0]
    return Request(model=model, inputs=inputs.detach().to(device), sigma=float(sigma),
                   noise=noise_model,
                   batch_size=batch_size, num_classes=num_classes, entropy=entropy,
                   device=device, indices=index_list, progress=progress, rank=rank,
                   world_size=world_size)


def _model_device(model, inputs: torch.Tensor) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            return tensor.device
    return inputs.device
