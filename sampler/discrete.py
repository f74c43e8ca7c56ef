"""Exact discrete Gaussian noise for inputs on a grid: randomized smoothing that is sound in floats.

Why
---
Theorem 1 of Jia et al. [2]_ (and Cohen et al.'s [1]_) is a statement about real Gaussian
noise. Float noise is not Gaussian: Voráček and Hein [3]_ built classifiers that exploit
the rounding of ``x + sigma * eps`` and obtain false certificates from it. Their remedy,
for inputs on a grid such as 8-bit images (``x = i / 255``), is to never form a float
Gaussian at all.

The construction
----------------
Let ``g`` be the grid (:attr:`DiscreteGaussianNoise.grid`), ``x = i / g`` a grid point and
``f`` the model. Take as base classifier ``h(z) = f(fl(round(g z) / g))``: the model applied
to ``z`` rounded to the grid (``fl`` is the float the division gives in the input's dtype).
For real noise ``eps ~ N(0, sigma^2 I)``, ``round(g (x + eps)) = i + round(g eps)``, so
``h(x + eps) = f(fl((i + j) / g))`` with ``j = round(g eps)``, independent per coordinate and

    P(j) = Phi((j + 1/2) / (g sigma)) - Phi((j - 1/2) / (g sigma)).

``h`` is an ordinary classifier on the reals, its smoothed classifier is a Gaussian-smoothed
classifier, and Theorem 1 holds for it at ``x`` for every real perturbation. Sampling it
needs only integer offsets ``j``: no float noise is ever formed, and the model sees
exactly ``fl((i + j) / g)``.

Drawing the offsets
-------------------
Integers only. Every coordinate of every sample takes one uniform integer ``u`` in
``[0, 2**63)`` from the block's seeded generator (``Tensor.random_`` on int64, whose
values are the low 63 bits of the generator's 64-bit words). The target is the
distribution with integer weights ``W_j / 2**63``, where ``W_j`` are differences of CDF
thresholds ``T(b) = nearest integer to 2**63 Phi(b / (g sigma))`` at the cell boundaries
``b = j +- 1/2``, computed with mpmath at 256 bits (the upper half as complements of the
lower, so the weights are exactly symmetric). The support is ``|j| <= J``, where ``J`` is
the first ``k`` whose boundary threshold ``T(-(k + 1/2))`` rounds to 0: nothing beyond it
has weight.

Instead of a binary search of ``u`` among the thresholds (which costs about 40 ns per
coordinate on a CPU, two thirds of a small CNN's forward pass), ``u`` is mapped to an offset
in O(1) by Walker's alias method, built in exact integer arithmetic from the same weights:
the low ``m`` bits of ``u`` pick one of ``2**m`` columns, the column's integer threshold
decides between the column's own offset and its alias. The alias table realizes exactly
the weights ``W_j / 2**63`` (:meth:`OffsetTable.realized_weights` recounts them), so the
sampled distribution is that of inverting ``u`` through the CDF thresholds.

delta
-----
The weights differ from the exact ``P(j)`` by the rounding of the thresholds (at most
``2**-64`` each) and the truncated tails (mass ``2 Phi(-(J + 1/2) / (g sigma)) < 2**-63``).
:attr:`OffsetTable.delta_per_coordinate` is the total-variation distance between the two,
computed exactly at 256 bits and rounded up; it is at most ``(J + 1) * 2**-63``.
Coordinates are independent, so the distribution of a whole noisy sample is within
``delta = n_coords * delta_per_coordinate`` of the exact one in total variation: every
class probability the counts estimate is within ``delta`` of the smoothed classifier's,
and certification subtracts ``delta`` from the lower bound and adds it to the upper
bounds (see ``docs/soundness.md``).

References
----------
.. [1] J. Cohen, E. Rosenfeld and J. Z. Kolter, "Certified adversarial robustness via
   randomized smoothing", ICML 2019.
.. [2] J. Jia, X. Cao, B. Wang and N. Z. Gong, "Certified robustness for top-k predictions
   against adversarial perturbations via randomized smoothing", ICLR 2020.
.. [3] V. Voráček and M. Hein, "Sound randomized smoothing in floating-point arithmetic",
   ICLR 2023.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass

import mpmath
import numpy as np
import torch

__all__ = ["DiscreteGaussianNoise", "OffsetTable", "offset_table", "RANDOM_BITS", "MAX_GRID",
           "MAX_GRID_SIGMA"]

#: Bits of every uniform integer: ``u`` is uniform on ``[0, 2**RANDOM_BITS)``.
RANDOM_BITS = 63
#: The largest ``grid * sigma`` supported (the offset table then has about 730,000 entries).
MAX_GRID_SIGMA = 40_000
#: The largest grid (exact in float32, whose integers are exact up to 2**24).
MAX_GRID = 2**24
#: Working precision (bits) of the thresholds and of delta.
_PREC = 256
#: mpmath's erfc is trusted to ``2**-(_PREC - 8)`` absolute for values in [0, 1]; delta
#: carries that error for every term it sums.
_MP_ERROR = mpmath.mpf(2) ** -(_PREC - 8)
#: Noisy coordinates drawn per chunk of a block (bounds the int64 temporaries to 32 MiB).
_CHUNK = 1 << 22
#: Significand bits of the supported input dtypes.
_SIGNIFICAND = {torch.float32: 24, torch.float64: 53}


@dataclass(frozen=True, repr=False)
class OffsetTable:
    """The integer tables that draw one coordinate's offset ``j``, and their error delta.

    Built by :func:`offset_table`; see the module docstring for the construction.

    Attributes
    ----------
    sigma, grid : float, int
        The noise ``N(0, sigma^2)`` and the grid ``{i / grid}``.
    J : int
        Offsets lie in ``-J .. J``.
    tails : tuple of int
        ``tails[k]`` is the nearest integer to ``2**63 * Phi(-(k + 1/2) / (grid * sigma))``
        for ``k = 0 .. J``; ``tails[J] == 0`` and no earlier entry is 0.
    weights : tuple of int
        ``weights[j + J]`` is the number of ``u`` in ``[0, 2**63)`` that give offset ``j``;
        they sum to ``2**63``.
    column_bits : int
        The alias table has ``2**column_bits >= 2J + 1`` columns.
    keep_below : ndarray of int64, shape (2**column_bits,)
        Column ``c`` keeps its own offset index ``c`` when ``u <= keep_below[c]``.
    alias : ndarray of int64, shape (2**column_bits,)
        Otherwise it gives offset index ``alias[c]`` (an index ``r`` means ``j = r - J``).
    delta_per_coordinate : float
        Total-variation distance between the drawn offset and the exact ``P(j)``, rounded
        up; at most ``(J + 1) * 2**-63``.
    """

    sigma: float
    grid: int
    J: int
    tails: tuple
    weights: tuple
    column_bits: int
    keep_below: np.ndarray
    alias: np.ndarray
    delta_per_coordinate: float

    def __repr__(self) -> str:
        return (f"OffsetTable(sigma={self.sigma!r}, grid={self.grid}, J={self.J}, "
                f"columns={1 << self.column_bits}, "
                f"delta_per_coordinate={self.delta_per_coordinate!r})")

    def cdf_thresholds(self) -> np.ndarray:
        """The ``2J`` integer CDF thresholds ``T(j + 1/2)``, ``j = -J .. J - 1``, increasing.

        Inverting ``u`` through them, ``j = -J + #{thresholds <= u}`` (``searchsorted`` on
        the right), draws offsets with exactly :attr:`weights`; the alias table is a
        faster map with the same distribution.
        """
        lower = [self.tails[k] for k in range(self.J - 1, -1, -1)]  # boundaries -(k + 1/2)
        upper = [(1 << RANDOM_BITS) - self.tails[k] for k in range(self.J)]  # +(k + 1/2)
        return np.array(lower + upper, dtype=np.int64)

    def realized_weights(self) -> list[int]:
        """Count, for every offset index, the ``u`` in ``[0, 2**63)`` the alias table maps to it.

        Exact integer arithmetic; equals :attr:`weights` (a check of the alias table).
        """
        columns = 1 << self.column_bits
        capacity = 1 << (RANDOM_BITS - self.column_bits)
        counts = [0] * (2 * self.J + 1)
        for c in range(columns):
            own = (int(self.keep_below[c]) + 1) >> self.column_bits  # u <= keep_below[c]
            if own:
                counts[c] += own
            if own < capacity:
                counts[int(self.alias[c])] += capacity - own
        return counts


def offset_table(sigma: float, grid: int) -> OffsetTable:
    """The offset tables for noise ``N(0, sigma^2)`` on the grid ``{i / grid}`` (cached).

    Parameters
    ----------
    sigma : float
        Finite, ``> 0``.
    grid : int
        ``>= 1``, with ``grid * sigma <= MAX_GRID_SIGMA``.

    Returns
    -------
    OffsetTable

    Examples
    --------
    >>> table = offset_table(0.25, 255)
    >>> table.J, sum(table.weights) == 2**63
    (579, True)
    >>> table.delta_per_coordinate <= (table.J + 1) * 2.0**-63
    True
    """
    sigma, grid = _check_sigma(sigma), _check_grid(grid)
    if grid * sigma > MAX_GRID_SIGMA:
        raise ValueError(f"grid * sigma must be at most {MAX_GRID_SIGMA} for discrete noise "
                         f"(the offset table grows with it), got grid={grid} and "
                         f"sigma={sigma!r}")
    return _offset_table(sigma, grid)


@functools.lru_cache(maxsize=32)
def _offset_table(sigma: float, grid: int) -> OffsetTable:
    one = 1 << RANDOM_BITS
    with mpmath.workprec(_PREC):
        # erfc(t / (s sqrt 2)) / 2 = Phi(-t / s), s = grid * sigma (exact: 53 x 32 bits).
        scale = 1 / (mpmath.mpf(sigma) * grid * mpmath.sqrt(2))
        half = mpmath.mpf(1) / 2
        q: list = []  # q[k] = Phi(-(k + 1/2) / s), the mass beyond boundary k + 1/2
        tails: list[int] = []
        limit = int(10 * MAX_GRID_SIGMA) + 10  # J is about 9.1 s: never reached
        while not tails or tails[-1] != 0:
            if len(tails) > limit:  # pragma: no cover - excluded by MAX_GRID_SIGMA
                raise RuntimeError("the discrete Gaussian's tail did not vanish")
            value = mpmath.erfc((len(q) + half) * scale) / 2
            q.append(value)
            tails.append(int(mpmath.nint(value * one)))  # nearest (ties: even)
        J = len(tails) - 1
        weights = [one - 2 * tails[0]] + [tails[k - 1] - tails[k] for k in range(1, J + 1)]
        # Total variation between the drawn offsets and the exact ones: half the sum of
        # |drawn - exact| over -J..J (symmetric, so j = 0 once and j > 0 twice) plus half
        # the exact mass beyond +-J, 2 q[J].
        tv = abs(mpmath.mpf(weights[0]) / one - (1 - 2 * q[0])) / 2
        for j in range(1, J + 1):
            tv += abs(mpmath.mpf(weights[j]) / one - (q[j - 1] - q[j]))
        tv += q[J]
        tv += (2 * J + 2) * _MP_ERROR  # every q carries at most _MP_ERROR
        bound = mpmath.mpf(J + 1) / one
        if tv > bound:  # pragma: no cover - the derivation in docs/soundness.md excludes it
            raise RuntimeError(f"delta {tv} exceeds its bound {bound}")
        delta = _round_up(tv)
    symmetric = weights[:0:-1] + weights  # j = -J .. J
    column_bits, keep_below, alias = _alias_tables(symmetric)
    return OffsetTable(sigma=sigma, grid=grid, J=J, tails=tuple(tails),
                       weights=tuple(symmetric), column_bits=column_bits,
                       keep_below=keep_below, alias=alias, delta_per_coordinate=delta)


def _alias_tables(weights: list[int]) -> tuple[int, np.ndarray, np.ndarray]:
    """Walker's alias tables in exact integers for ``weights`` summing to ``2**63``.

    With ``2**m`` columns of capacity ``C = 2**(63 - m)`` (so ``2**m * C = 2**63``), column
    ``c`` keeps ``own[c]`` of its ``C`` values for itself and gives the rest to ``alias[c]``
    (Vose's construction). Every step moves an integer amount, so the realized weights are
    exactly ``weights``.
    """
    bits = max(0, (len(weights) - 1).bit_length())
    columns = 1 << bits
    capacity = 1 << (RANDOM_BITS - bits)
    left = list(weights) + [0] * (columns - len(weights))
    own = [capacity] * columns
    alias = list(range(columns))
    small = [c for c in range(columns) if left[c] < capacity]
    large = [c for c in range(columns) if left[c] >= capacity]
    while small and large:
        s, l = small.pop(), large.pop()
        own[s], alias[s] = left[s], l
        left[l] -= capacity - left[s]
        (small if left[l] < capacity else large).append(l)
    for c in small + large:  # what is left holds exactly a full column each
        if left[c] != capacity:  # pragma: no cover - integer arithmetic excludes it
            raise RuntimeError("alias table construction lost mass")
    keep_below = np.array([(o << bits) - 1 for o in own], dtype=np.int64)
    alias_array = np.array(alias, dtype=np.int64)
    for table in (keep_below, alias_array):  # shared through the cache: read-only
        table.setflags(write=False)
    return bits, keep_below, alias_array


def _offset_index(u: torch.Tensor, keep_below: torch.Tensor, alias: torch.Tensor, mask: int,
                  column: torch.Tensor, cut: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Map 63-bit words ``u`` (flat int64) to offset indices ``r = j + J`` by the alias table.

    Column ``u & mask`` (the low bits); its own index if ``u <= keep_below[column]``, else
    its alias. ``column``, ``cut`` and ``keep`` are workspaces of ``u``'s size; the result
    is written into ``column`` and ``u`` is overwritten.
    """
    torch.bitwise_and(u, mask, out=column)
    torch.index_select(keep_below, 0, column, out=cut)
    torch.le(u, cut, out=keep)
    other = torch.index_select(alias, 0, column, out=u)
    return torch.where(keep, column, other, out=column)


def _round_up(value) -> float:
    """The smallest float >= ``value`` (an mpf >= 0)."""
    out = float(value)
    if mpmath.mpf(out) < value:
        out = math.nextafter(out, math.inf)
    return out


def _check_sigma(sigma) -> float:
    if isinstance(sigma, (bool, np.bool_)) or not isinstance(sigma, numbers.Real) \
            or not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    return float(sigma)


def _check_grid(grid) -> int:
    if isinstance(grid, (bool, np.bool_)) or not isinstance(grid, (int, np.integer)) \
            or not 1 <= grid <= MAX_GRID:
        raise ValueError(f"grid must be an integer in 1..{MAX_GRID}, got {grid!r}")
    return int(grid)


class DiscreteGaussianNoise:
    """Gaussian noise on the grid ``{i / grid}``: exact in distribution up to ``delta``.

    For an input ``x = i / grid`` the model receives ``fl((i + j) / grid)`` (the float the
    division gives in the input's dtype), with integer offsets ``j`` drawn independently
    per coordinate from ``P(j) = Phi((j + 1/2) / (grid sigma)) - Phi((j - 1/2) / (grid
    sigma))``: the distribution of ``round(grid * (x + eps))`` for ``eps ~ N(0, sigma^2)``.
    The counts are therefore those of the base classifier ``h(z) = f(round(z))`` (``z``
    rounded to the grid) under Gaussian noise, to which Theorem 1 of Jia et al. [2]_
    applies for every real perturbation, with probabilities off by at most
    :meth:`delta` (see :mod:`sampler.discrete` and Voráček and Hein [3]_).

    Parameters
    ----------
    sigma : float
        Standard deviation of the Gaussian, finite and ``> 0``.
    grid : int, default 255
        The grid ``{i / grid}`` the inputs lie on (255 for 8-bit images scaled to [0, 1]);
        ``grid * sigma <= MAX_GRID_SIGMA``.

    Notes
    -----
    Inputs must be float32 or float64, exactly on the grid (:meth:`check_inputs`), with
    ``|i| + J <= 2**21`` (float32) or ``2**50`` (float64), so that every ``i + j`` and
    ``i`` itself are exact in the dtype. Each coordinate of each sample costs one 64-bit
    random word, two table look-ups and a division.

    References
    ----------
    .. [1] J. Cohen, E. Rosenfeld and J. Z. Kolter, "Certified adversarial robustness via
       randomized smoothing", ICML 2019.
    .. [2] J. Jia, X. Cao, B. Wang and N. Z. Gong, "Certified robustness for top-k
       predictions against adversarial perturbations via randomized smoothing", ICLR 2020.
    .. [3] V. Voráček and M. Hein, "Sound randomized smoothing in floating-point
       arithmetic", ICLR 2023.

    Examples
    --------
    >>> noise = DiscreteGaussianNoise(0.25, grid=255)
    >>> noise
    DiscreteGaussianNoise(sigma=0.25, grid=255)
    >>> x = torch.tensor([[0.0, 128 / 255, 1.0]])
    >>> noise.check_inputs(x)
    >>> out = torch.empty(4, 3)
    >>> noise.fill_(out, x[0], torch.Generator().manual_seed(0))
    >>> bool(((out * 255).round() / 255 == out).all())  # every value is a grid point
    True
    >>> noise.header_fields(3 * 224 * 224)  # ImageNet-sized inputs
    {'noise': 'discrete', 'grid': 255, 'delta': '3.28...e-12'}
    """

    def __init__(self, sigma: float, grid: int = 255) -> None:
        self.table = offset_table(sigma, grid)
        self.sigma = self.table.sigma
        self.grid = self.table.grid
        self._device_tables: dict = {}

    def __repr__(self) -> str:
        return f"DiscreteGaussianNoise(sigma={self.sigma!r}, grid={self.grid})"

    def delta(self, n_coords: int) -> float:
        """Total-variation distance of a noisy sample of ``n_coords`` coordinates, rounded up.

        ``n_coords * delta_per_coordinate`` (a product of independent coordinates is within
        the sum of their distances); every class probability is within it of the exact one.
        """
        if isinstance(n_coords, (bool, np.bool_)) or not isinstance(n_coords, (int, np.integer)) \
                or n_coords < 1:
            raise ValueError(f"n_coords must be a positive integer, got {n_coords!r}")
        with mpmath.workprec(_PREC):
            return _round_up(mpmath.mpf(self.table.delta_per_coordinate) * int(n_coords))

    def header_fields(self, n_coords: int) -> dict[str, object]:
        """``noise``, ``grid`` and ``delta`` (:meth:`delta`, as its repr) for a count file."""
        return {"noise": "discrete", "grid": self.grid, "delta": repr(self.delta(n_coords))}

    def check_inputs(self, inputs: torch.Tensor) -> None:
        """Raise ``ValueError`` unless every element of ``inputs`` is a grid point ``i / grid``.

        "On the grid" means equal to the float ``fl(i / grid)`` that division gives in the
        input's dtype, for an integer ``i`` with ``|i| + J`` within the dtype's exact range.
        The message names the first offending element (its index and value).
        """
        limit = self._index_limit(inputs.dtype)
        flat = inputs.detach().reshape(-1)
        grid_t = self._grid_tensor(flat)
        for start in range(0, flat.numel(), _CHUNK):  # bounded temporaries for large sets
            part = flat[start:start + _CHUNK]
            index = torch.round(part.to(torch.float64) * self.grid)
            in_range = torch.isfinite(index) & (index.abs() <= limit)
            index = torch.where(in_range, index, torch.zeros_like(index))
            nearest = torch.div(index.to(part.dtype), grid_t)
            bad = ~(in_range & (nearest == part))
            if bool(bad.any()):
                k = int(bad.nonzero()[0, 0])
                self._reject(inputs.shape, start + k, part[k].item(), bool(in_range[k]),
                             int(index[k]), nearest[k].item(), limit)

    def _reject(self, shape, position: int, value: float, in_range: bool, index: int,
                nearest: float, limit: int) -> None:
        where = ", ".join(str(int(v)) for v in np.unravel_index(position, tuple(shape)))
        if not math.isfinite(value):
            raise ValueError(f"inputs[{where}] = {value!r} is not on the grid i / {self.grid} "
                             "(discrete noise needs finite inputs that are exactly i / "
                             f"{self.grid})")
        if not in_range:
            raise ValueError(f"inputs[{where}] = {value!r} is outside the range of discrete "
                             f"noise on the grid i / {self.grid}: |i| must be at most {limit} "
                             f"(so that i + j is exact for every offset |j| <= "
                             f"{self.table.J} in the inputs' dtype)")
        raise ValueError(f"inputs[{where}] = {value!r} is not on the grid i / {self.grid} "
                         f"(the nearest grid point is {index} / {self.grid} = {nearest!r}); "
                         f"discrete noise needs inputs that are exactly i / {self.grid}")

    def fill_(self, out: torch.Tensor, x: torch.Tensor, generator: torch.Generator) -> None:
        """Write ``out.shape[0]`` noisy copies ``fl((i + j) / grid)`` of ``x = i / grid``.

        ``x`` must have passed :meth:`check_inputs`; ``out`` is contiguous, of shape
        ``(m, *x.shape)`` and of ``x``'s dtype. Draws ``m * x.numel()`` 63-bit integers
        from ``generator`` in row order, on ``out``'s device.
        """
        m = out.shape[0]
        if m == 0:
            return
        keep_below, alias = self._tables(out.device)
        grid_t = self._grid_tensor(out)
        d = x.numel()
        # i - J per coordinate: the offset index r in 0..2J then gives i + j = r + (i - J).
        base = torch.round(x.reshape(-1).to(torch.float64) * self.grid).to(torch.int64)
        base -= self.table.J
        flat = out.view(m, d)
        mask = (1 << self.table.column_bits) - 1
        rows = max(1, _CHUNK // d)  # depends on d only: the draws do not depend on m
        u_all, column_all, cut_all, keep_all = self._workspace(out.device, min(rows, m) * d)
        for start in range(0, m, rows):
            size = (min(m, start + rows) - start) * d
            u, column, cut, keep = (t[:size] for t in (u_all, column_all, cut_all, keep_all))
            u.random_(generator=generator)  # uniform on [0, 2**63)
            index = _offset_index(u, keep_below, alias, mask, column, cut, keep)
            target = flat[start:start + size // d]
            target.copy_(index.view(-1, d).add_(base))  # i + j, exact in the dtype
            target.div_(grid_t)

    def _index_limit(self, dtype: torch.dtype) -> int:
        if dtype not in _SIGNIFICAND:
            raise ValueError(f"inputs must be float32 or float64 for discrete noise, got "
                             f"dtype {dtype}")
        return 2 ** (_SIGNIFICAND[dtype] - 3) - self.table.J

    def _tables(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = str(device)
        tables = self._device_tables.get(key)
        if tables is None:
            tables = (torch.tensor(self.table.keep_below, device=device),
                      torch.tensor(self.table.alias, device=device))
            self._device_tables[key] = tables
        return tables

    def _workspace(self, device: torch.device, size: int) -> tuple[torch.Tensor, ...]:
        """Flat int64 buffers ``u``, ``column``, ``cut`` and a bool ``keep``, reused across
        blocks (fresh temporaries would cost a page fault per 4 KiB on every block)."""
        key = ("workspace", str(device))
        buffers = self._device_tables.get(key)
        if buffers is None or buffers[0].numel() < size:
            buffers = tuple(torch.empty(size, dtype=torch.int64, device=device)
                            for _ in range(3)) + (torch.empty(size, dtype=torch.bool,
                                                              device=device),)
            self._device_tables[key] = buffers
        return buffers

    def _grid_tensor(self, like: torch.Tensor) -> torch.Tensor:
        # A 0-dim tensor on the same device: on CUDA, dividing by a CPU scalar is done as a
        # multiplication by its reciprocal, which is not correctly rounded.
        key = (str(like.device), like.dtype)
        grid_t = self._device_tables.get(key)
        if grid_t is None:
            grid_t = torch.tensor(float(self.grid), dtype=like.dtype, device=like.device)
            self._device_tables[key] = grid_t
        return grid_t
