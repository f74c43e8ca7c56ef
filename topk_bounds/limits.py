"""The ranges of input over which topk-bounds keeps its promises, in one place.

Every public entry point checks its input against these limits *before* any arithmetic,
and rejects what lies beyond them with a ``ValueError`` that names the argument.
"""

from __future__ import annotations

__all__ = ["N_MAX"]

#: Largest number of samples ``n`` (a row's total count) accepted anywhere. The float64
#: tail evaluations (``topk_bounds._cp_float``) and the arbitrary-precision quadrature
#: (``topk_bounds._mp_beta``) are validated up to this n; beyond it they degrade.
N_MAX = 10**12
