"""The ranges of input over which topk-bounds keeps its promises, in one place.

Every public entry point checks its input against these limits *before* any arithmetic,
and rejects what lies beyond them with a ``ValueError`` that names the argument.

>>> from topk_bounds import limits
>>> limits.N_MAX, limits.LEVEL_MIN, limits.DPS_MIN
(1000000000000, 1e-300, 15)
"""

from __future__ import annotations

__all__ = ["N_MAX", "LEVEL_MIN", "DPS_MIN"]

#: Largest number of samples ``n`` (a row's total count) accepted anywhere. The float64
#: tail evaluations (``topk_bounds._cp_float``) and the arbitrary-precision quadrature
#: (``topk_bounds._mp_beta``) are validated up to this n; beyond it they degrade (at
#: n = 2.5e15 the float64 bounds are off by 1.7e-9, near 1e17 they become trivial, and
#: ``scipy.special.betaln``, which sizes the solver's steps, is off by ~1e4 at n ~ 1e15).
N_MAX = 10**12

#: Smallest level (failure probability) ``beta`` of a Clopper-Pearson bound, and so the
#: smallest ``alpha / c`` a certificate may use. Above it every float64 tail the bounds
#: are proven with lies at or above ~1e-300 near the root, where the relative error bounds
#: of ``topk_bounds._cp_float`` hold; in the subnormal range (below 2.2e-308) they do not,
#: and a level of 2.21e-321 gave an unsound bound (and 5e-324 took 39 s for one row).
#: Any realistic level is far above it.
LEVEL_MIN = 1e-300

#: Smallest number of decimal digits accepted by the arbitrary-precision (``dps=``) paths;
#: fewer digits than float64 carries is the float path's job.
DPS_MIN = 15
