"""Where every noise sample comes from: seeds, blocks and the split across ranks.

The noise of one input is cut into blocks of :func:`block_size` consecutive samples (the
last block of an input may be shorter). Each block is drawn whole by its own reseeded
torch generator, with a seed that depends only on ``(seed, stream, input index, block
index)``. So a row of counts depends only on the seed, the input's global index, ``n``,
the input (its values and its number of scalars) and the device type; not on the batch
size, on which other inputs share the call or on how many ranks share the work. Ranks take
whole blocks, round robin over the call's blocks.

This module uses numpy only; :mod:`sampler.core` turns the seeds into torch generators.

Block size. A block holds about :data:`BLOCK_SCALARS` noise values: :func:`block_size` is
the largest power of two between :data:`BLOCK_MIN` and :data:`BLOCK_MAX` samples whose
block has at most that many scalars (2,048 samples of an 8x8 image, 4,096 of a scalar,
128 of anything with more than 512 scalars, such as a 28x28 or a 3x32x32 image).
Reseeding a generator and launching a draw cost the same for a block of 128 scalars as
for one of a million, so small inputs get long blocks; and a block of small inputs stays
small enough (512 KiB of float32) to stay in the CPU's cache between the draw (torch's
CPU ``normal_`` passes over it twice) and the forward passes that read it.

Seeds. ``numpy.random.SeedSequence(seed, spawn_key=(stream,))`` gives the call a 128-bit
key ``(k0, k1)`` of two 64-bit words. Input ``i`` (its global index) gets the 64-bit word
``u = fmix64(fmix64(i ^ k0) ^ k1)``, where ``fmix64`` (the MurmurHash3 finaliser) is a
bijection of 64-bit words, so distinct inputs get distinct words. Writing ``u = hi << 32 |
lo``, block ``j`` of input ``i`` gets the 64-bit seed ``hi << 32 | fmix32(lo + j mod
2**32)``, where ``fmix32`` is the 32-bit finaliser, also a bijection. CUDA's Philox
generator uses all 64 bits. Torch's CPU generator (a Mersenne Twister) keeps only the low
32 bits; they are distinct for the blocks of one input by construction, so the samples
within a row are always drawn from distinct seeds. Two different inputs may share a block
of noise on the CPU with a tiny probability (about ``2 * blocks_per_input / 2**32`` per
pair); each row is still an exact sample of its own distribution.

Every seed of a call is computed at once, vectorized in numpy (:func:`schedule`), in
pieces of at most :data:`PLAN_BLOCKS` blocks, so memory does not grow with ``n`` or with
the number of inputs.

History. Count files of header version 1 used blocks of 128 samples for every input and a
``SeedSequence`` per input; version 2 (this layout) changes every row.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

__all__ = ["BLOCK_MIN", "BLOCK_MAX", "BLOCK_SCALARS", "ESTIMATION", "SELECTION", "Plan",
           "block_size", "blocks_per_input", "input_words", "block_seeds", "schedule",
           "check_blocks", "fresh_entropy", "global_indices", "INDEX_LIMIT", "MAX_BLOCKS"]

#: Fewest samples per block (inputs with more than BLOCK_SCALARS / BLOCK_MIN scalars).
BLOCK_MIN = 128
#: Most samples per block (inputs with at most BLOCK_SCALARS / BLOCK_MAX scalars).
BLOCK_MAX = 4096
#: Scalars per block that :func:`block_size` aims at (512 KiB of float32 noise).
BLOCK_SCALARS = 2**17
#: Blocks whose seeds :func:`schedule` computes at a time.
PLAN_BLOCKS = 2**15

#: Stream of :func:`sampler.sample_counts` and of the estimation stage of the two-stage
#: procedure.
ESTIMATION = 0
#: Stream of the selection stage of the two-stage procedure (disjoint from ESTIMATION).
SELECTION = 1

#: Most blocks in one row: their 32-bit low seed words must be distinct.
MAX_BLOCKS = 2**32

#: Global indices must be below this (they are mixed as 64-bit words; 2**63 keeps int64).
INDEX_LIMIT = 2**63

_MASK32 = np.uint64(0xFFFFFFFF)


def block_size(scalars: int) -> int:
    """Samples per block for inputs of ``scalars`` values each (see the module docs).

    >>> block_size(64), block_size(28 * 28), block_size(3 * 32 * 32), block_size(1)
    (2048, 128, 128, 4096)
    """
    size = BLOCK_MAX
    while size > BLOCK_MIN and size * scalars > BLOCK_SCALARS:
        size //= 2
    return size


def blocks_per_input(n: int, size: int) -> int:
    """How many blocks of ``size`` samples hold ``n`` samples."""
    return -(-n // size)


def _fmix64(k: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, elementwise on uint64 (a bijection)."""
    k = k ^ (k >> np.uint64(33))
    k = k * np.uint64(0xFF51AFD7ED558CCD)
    k = k ^ (k >> np.uint64(33))
    k = k * np.uint64(0xC4CEB9FE1A85EC53)
    return k ^ (k >> np.uint64(33))


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser, elementwise on uint64 holding 32-bit words."""
    h = h ^ (h >> np.uint64(16))
    h = (h * np.uint64(0x85EBCA6B)) & _MASK32
    h = h ^ (h >> np.uint64(13))
    h = (h * np.uint64(0xC2B2AE35)) & _MASK32
    return h ^ (h >> np.uint64(16))


def fresh_entropy() -> int:
    """128 bits from the operating system, for ``seed=None``."""
    return int(np.random.SeedSequence().entropy)


@functools.lru_cache(maxsize=64)
def _call_key(entropy: int, stream: int) -> tuple[np.uint64, np.uint64]:
    words = np.random.SeedSequence(entropy, spawn_key=(stream,)).generate_state(2, np.uint64)
    return words[0], words[1]


def input_words(entropy: int, stream: int, indices) -> np.ndarray:
    """The 64-bit word ``u`` of each global index (uint64 array; see the module docs).

    >>> u = input_words(0, ESTIMATION, [0, 1, 2])
    >>> u.dtype, len(set(u.tolist()))
    (dtype('uint64'), 3)
    """
    k0, k1 = _call_key(entropy, stream)
    with np.errstate(over="ignore"):
        return _fmix64(_fmix64(np.asarray(indices, dtype=np.uint64).reshape(-1) ^ k0) ^ k1)


def block_seeds(words: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """The 64-bit seed of block ``blocks[t]`` of the input with word ``words[t]``.

    >>> u = input_words(0, ESTIMATION, [7] * 1000)
    >>> seeds = block_seeds(u, np.arange(1000))
    >>> len(set((seeds & 0xFFFFFFFF).tolist()))  # distinct 32-bit seeds within a row
    1000
    """
    words = np.asarray(words, dtype=np.uint64)
    low = (words + np.asarray(blocks, dtype=np.uint64)) & _MASK32
    with np.errstate(over="ignore"):
        return (words & ~_MASK32) | _fmix32(low)


@dataclass(frozen=True)
class Plan:
    """A piece of a rank's schedule: parallel lists, one entry per block, in call order.

    ``pos`` is the input's position in the call, ``size`` the block's number of samples and
    ``seed`` its 64-bit generator seed (Python ints, for a fast loop).
    """

    pos: list
    size: list
    seed: list


def schedule(words: np.ndarray, n: int, size: int, rank: int = 0,
             world_size: int = 1, start: int = 0) -> Iterator[Plan]:
    """The blocks that rank ``rank`` of ``world_size`` draws, in call order, in pieces.

    ``words`` holds :func:`input_words` of the call's inputs, ``size`` the block size.
    The call draws samples ``start .. n - 1`` of each input's stream: its blocks
    ``start // size`` up to the last block of ``n`` samples, which is shorter when ``size``
    does not divide ``n`` (``start``, a multiple of ``size`` below ``n``, is 0 unless an
    adaptive run continues a stream: the blocks are those of the ``n``-sample stream).
    The call's blocks are numbered input-major (all blocks of input 0, then of input 1, ...)
    and rank ``r`` takes those whose number is ``r`` modulo ``world_size``. The union over
    ranks is the single-process schedule, so the summed counts do not depend on
    ``world_size``. Each piece holds at most :data:`PLAN_BLOCKS` blocks, so memory does
    not grow with ``n`` or with the number of inputs.

    Examples
    --------
    >>> u = input_words(0, ESTIMATION, [0, 1])
    >>> [(p.pos, p.size) for p in schedule(u, 200, 128)]
    [([0, 0, 1, 1], [128, 72, 128, 72])]
    >>> [p.pos for p in schedule(u, 200, 128, rank=1, world_size=2)]
    [[0, 1]]
    >>> tail = next(schedule(u, 200, 128, start=128))  # the blocks after the first
    >>> tail.size, tail.seed == next(schedule(u, 200, 128)).seed[1::2]
    ([72, 72], True)
    """
    if start % size or not 0 <= start < n:
        raise ValueError(f"start must be a multiple of the block size {size} in 0..{n - 1}, "
                         f"got {start}")
    first = start // size
    per_input = blocks_per_input(n, size) - first
    last = n - (first + per_input - 1) * size
    total = len(words) * per_input
    span = PLAN_BLOCKS * world_size
    for lo in range(rank, total, span):
        number = np.arange(lo, min(total, lo + span), world_size, dtype=np.int64)
        pos, block = np.divmod(number, per_input)
        sizes = np.where(block == per_input - 1, last, size)
        seeds = block_seeds(words[pos], block + first)
        yield Plan(pos=pos.tolist(), size=sizes.tolist(), seed=seeds.tolist())


def check_blocks(n: int, size: int) -> None:
    """Reject an ``n`` whose row would need more than :data:`MAX_BLOCKS` blocks.

    The low 32 bits of a row's block seeds are distinct only for its first ``2**32``
    blocks; beyond them a row would reuse noise, and its samples would not be
    independent.

    >>> check_blocks(10**6, 128)
    >>> check_blocks(2**32 * 128 + 1, 128)
    Traceback (most recent call last):
    ...
    ValueError: n must be at most 549755813888 for inputs of this size (2**32 blocks of 128 samples: more would reuse noise within a row), got 549755813889
    """
    if blocks_per_input(n, size) > MAX_BLOCKS:
        raise ValueError(f"n must be at most {MAX_BLOCKS * size} for inputs of this size "
                         f"(2**32 blocks of {size} samples: more would reuse noise within a "
                         f"row), got {n}")


def global_indices(indices: Sequence[int] | None, n_inputs: int) -> list[int]:
    """Validate ``indices`` (default ``0 .. n_inputs - 1``) and return them as Python ints."""
    if indices is None:
        return list(range(n_inputs))
    try:
        values = [operator.index(v) for v in np.asarray(indices, dtype=object).reshape(-1)]
    except TypeError:
        raise ValueError(f"indices must be integers, got {indices!r}") from None
    if len(values) != n_inputs or np.ndim(indices) != 1:
        raise ValueError(f"indices must be a 1-D sequence of {n_inputs} integers (one per "
                         f"input), got shape {np.shape(indices)}")
    if values and min(values) < 0:
        raise ValueError(f"indices must be >= 0, got {min(values)}")
    if values and max(values) >= INDEX_LIMIT:
        raise ValueError(f"indices must be < 2**63, got {max(values)}")
    return values
