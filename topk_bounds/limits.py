"""The ranges of input over which topk-bounds keeps its promises, in one place.

Every public entry point checks its input against these limits *before* any arithmetic,
and rejects what lies beyond them with a ``ValueError`` that names the argument.
"""

from __future__ import annotations

__all__ = ["N_MAX", "LEVEL_MIN"]

#: Largest number of samples ``n`` (a row's total count) accepted anywhere. The float64
#: tail evaluations (``topk_bounds._cp_float``) and the arbitrary-precision quadrature
#: (``topk_bounds._mp_beta``) are validated up to this n; beyond it they degrade.
N_MAX = 10**12

#: Smallest level (failure probability of one bound, e.g. alpha / c for SimuEM) accepted
#: anywhere. Below it the float64 bounds' relative safety margins approach the subnormal
#: range, where they underflow and stop being safe (a level of 2e-321 gave an unsound
#: Clopper-Pearson bound), and the solvers slow down (5e-324 took 39 s for one row).
#: 1e-300 is far below any level of practical use.
LEVEL_MIN = 1e-300
