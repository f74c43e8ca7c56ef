"""Where every noise sample comes from: seeds, blocks and the split across ranks.

The noise of one input is cut into blocks of :data:`BLOCK_SIZE` consecutive samples (the
last block of an input may be shorter). Each block is drawn by its own reseeded torch
generator, with a seed that depends only on ``(seed, stream, input index, block index)``.
So a row of counts depends only on the seed, the input's global index, ``n`` and the
device type; not on the batch size, on which other inputs share the call or on how many
ranks share the work. Ranks take whole blocks, round robin over the call's blocks.

This module uses numpy only; :mod:`sampler.core` turns the seeds into torch generators.

Seeds. ``numpy.random.SeedSequence(seed, spawn_key=(stream, index))`` gives every input a
64-bit key ``(hi, lo)``. Block ``j`` of that input gets the 64-bit seed
``hi << 32 | fmix32(lo + j mod 2**32)``, where ``fmix32`` (the MurmurHash3 finaliser) is a
bijection of 32-bit words. CUDA's Philox generator uses all 64 bits. Torch's CPU generator
(a Mersenne Twister) keeps only the low 32 bits; they are distinct for the blocks of one
input by construction, so the samples within a row are always drawn from distinct seeds.
Two different inputs may share a block of noise on the CPU with a tiny probability
(about ``2 * blocks_per_input / 2**32`` per pair); each row is still an exact sample of its
own distribution.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

__all__ = ["BLOCK_SIZE", "ESTIMATION", "SELECTION", "Block", "InputStream", "fresh_entropy",
           "blocks_per_input", "blocks_for_rank", "global_indices"]

#: Samples per independently seeded block. Changing it changes every row of counts.
BLOCK_SIZE = 128

#: Stream of :func:`sampler.sample_counts` and of the estimation stage of the two-stage
#: procedure.
ESTIMATION = 0
#: Stream of the selection stage of the two-stage procedure (disjoint from ESTIMATION).
SELECTION = 1

_MASK32 = 0xFFFFFFFF


def _fmix32(h: int) -> int:
    """MurmurHash3's 32-bit finaliser: a bijection of 32-bit words that mixes every bit."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK32
    h ^= h >> 16
    return h


def fresh_entropy() -> int:
    """128 bits from the operating system, for ``seed=None``."""
    return int(np.random.SeedSequence().entropy)


class InputStream:
    """The seeds of one input's noise blocks.

    Parameters
    ----------
    entropy : int
        The user's seed (``>= 0``), or :func:`fresh_entropy` for ``seed=None``.
    stream : int
        :data:`ESTIMATION` or :data:`SELECTION`.
    index : int
        The input's global index (its row number in a count file).

    Examples
    --------
    >>> s = InputStream(0, ESTIMATION, 7)
    >>> s.block_seed(0) == InputStream(0, ESTIMATION, 7).block_seed(0)
    True
    >>> len({s.block_seed(j) & 0xFFFFFFFF for j in range(1000)})  # distinct 32-bit seeds
    1000
    """

    __slots__ = ("_hi", "_lo")

    def __init__(self, entropy: int, stream: int, index: int) -> None:
        hi, lo = np.random.SeedSequence(entropy, spawn_key=(stream, index)).generate_state(
            2, np.uint32)
        self._hi = int(hi) << 32
        self._lo = int(lo)

    def block_seed(self, block: int) -> int:
        """The 64-bit seed of block ``block`` (an integer in ``[0, 2**64)``)."""
        return self._hi | _fmix32((self._lo + block) & _MASK32)


@dataclass(frozen=True)
class Block:
    """One block of noise: input ``pos`` of the call, block ``index``, ``size`` samples."""

    pos: int
    index: int
    size: int


def blocks_per_input(n: int) -> int:
    """How many blocks hold ``n`` samples."""
    return -(-n // BLOCK_SIZE)


def blocks_for_rank(n_inputs: int, n: int, rank: int = 0, world_size: int = 1) -> Iterator[Block]:
    """The blocks that rank ``rank`` of ``world_size`` draws, in call order.

    The call's blocks are numbered input-major (all blocks of input 0, then of input 1, ...)
    and rank ``r`` takes those whose number is ``r`` modulo ``world_size``. The union over
    ranks is the single-process schedule, so the summed counts do not depend on
    ``world_size``. Lazy: memory does not grow with ``n`` or ``n_inputs``.

    Examples
    --------
    >>> [(b.pos, b.index, b.size) for b in blocks_for_rank(2, 200)]
    [(0, 0, 128), (0, 1, 72), (1, 0, 128), (1, 1, 72)]
    >>> [(b.pos, b.index) for b in blocks_for_rank(2, 200, rank=1, world_size=2)]
    [(0, 1), (1, 1)]
    """
    per_input = blocks_per_input(n)
    last = n - (per_input - 1) * BLOCK_SIZE
    for pos in range(n_inputs):
        first = (rank - pos * per_input) % world_size
        for j in range(first, per_input, world_size):
            yield Block(pos, j, BLOCK_SIZE if j < per_input - 1 else last)


def global_indices(indices: Sequence[int] | None, n_inputs: int) -> list[int]:
    """Validate ``indices`` (default ``0 .. n_inputs - 1``) and return them as Python ints."""
    if indices is None:
        return list(range(n_inputs))
    try:
        values = [operator.index(v) for v in np.asarray(indices).reshape(-1).tolist()]
    except TypeError:
        raise ValueError(f"indices must be integers, got {indices!r}") from None
    if len(values) != n_inputs or np.ndim(indices) != 1:
        raise ValueError(f"indices must be a 1-D sequence of {n_inputs} integers (one per "
                         f"input), got shape {np.shape(indices)}")
    if values and min(values) < 0:
        raise ValueError(f"indices must be >= 0, got {min(values)}")
    return values
