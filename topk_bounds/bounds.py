"""One-sided Clopper-Pearson bounds on binomial proportions, vectorized and safely rounded.

For x successes in n trials and a failure probability ``beta``:

* the lower bound is the p with P(Bin(n, p) >= x) = beta, the beta-quantile of
  Beta(x, n - x + 1); it is 0 at x = 0 and beta^(1/n) at x = n;
* the upper bound is the p with P(Bin(n, p) <= x) = beta, the (1 - beta)-quantile of
  Beta(x + 1, n - x); it is 1 at x = n and 1 - beta^(1/n) at x = 0.

With probability at least 1 - beta over the n trials, the true proportion is at least the
lower bound (respectively at most the upper bound) [1]_.

Bounds close to 1 lose their meaning in float64 (1 - 1e-12 keeps only four digits of
the complement), so :func:`clopper_pearson_lower_complement` returns 1 - lower(x)
directly, as the upper bound of the other tail: 1 - lower(x) = upper(n - x).

Float64 results are on the safe side: lower bounds at most, upper bounds and complements
at least the exact value, each verified by evaluating the binomial tail with a bounded
error (:mod:`topk_bounds._cp_float`). With ``dps=N`` the bounds are computed with mpmath to about N digits
(:mod:`topk_bounds._mp_beta`), for n up to 10^12.

References
----------
.. [1] C. J. Clopper, E. S. Pearson, "The use of confidence or fiducial limits
   illustrated in the case of the binomial", Biometrika 26 (1934).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from . import _float as fl
from ._cp_float import safe_quantile

__all__ = [
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "clopper_pearson_lower_complement",
]


def _validate(x, n, beta):
    x_arr = np.asarray(x)
    n_arr = np.asarray(n)
    for name, arr in (("x", x_arr), ("n", n_arr)):
        if arr.dtype.kind not in "iu":
            if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
                continue
            raise ValueError(f"{name} must hold integers, got {arr!r}")
    x_arr = x_arr.astype(np.int64)
    n_arr = n_arr.astype(np.int64)
    if np.any(n_arr < 1):
        raise ValueError(f"n must be >= 1, got {n_arr[n_arr < 1].ravel()[0]}")
    bad = (x_arr < 0) | (x_arr > n_arr)
    if np.any(bad):
        xb, nb = np.broadcast_arrays(x_arr, n_arr)
        raise ValueError(f"x must lie in 0..n, got x = {xb[bad].ravel()[0]} with n = {nb[bad].ravel()[0]}")
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise ValueError(f"beta must be a probability in (0, 1), got {beta!r}") from None
    if not 0.0 < b < 1.0:
        raise ValueError(f"beta must be a probability in (0, 1), got {beta!r}")
    return x_arr, n_arr, b


def _upper_float(x, n, beta):
    """Safe (rounded-up) float64 upper bounds for validated int arrays."""
    x, n = np.broadcast_arrays(x, n)
    out = np.ones(x.shape)
    zero = x == 0
    mid = (x > 0) & (x < n)
    if zero.any():
        # 1 - beta**(1/n): log, divide and expm1 each within an ulp
        closed = -np.expm1(np.log(beta) / n[zero].astype(float))
        out[zero] = np.minimum(fl.up(closed * (1.0 + 8.0 * fl.ULP)), 1.0)
    if mid.any():
        out[mid] = _unique_map(safe_quantile, "upper", x[mid], n[mid], beta)
    return out


def _unique_map(func, kind, x, n, beta):
    """``func(kind, x, n, beta)`` computed once per distinct (x, n) pair.

    Counts repeat a lot (many labels share small counts), and each bound is an
    elementwise computation, so this changes no value, only the cost.
    """
    if n.size and np.all(n == n.flat[0]):
        ux, inverse = np.unique(x, return_inverse=True)
        un = np.full(ux.shape, n.flat[0])
    else:
        pairs, inverse = np.unique(np.stack([x.ravel(), n.ravel()], axis=1), axis=0, return_inverse=True)
        ux, un = pairs[:, 0], pairs[:, 1]
    return func(kind, ux, un, beta)[inverse.reshape(x.shape)]


def _lower_float(x, n, beta, complement=None):
    """Safe (rounded-down) float64 lower bounds.

    Two valid bounds are combined: 1 - upper(n - x) (precise unless the bound is
    small; pass ``complement = upper(n - x)`` if it is already known) and, where that
    is below 1e-3, the beta-quantile of Beta(x, n - x + 1) solved directly.
    """
    x, n = np.broadcast_arrays(x, n)
    if complement is None:
        complement = _upper_float(n - x, n, beta)
    out = np.array(np.maximum(fl.down(1.0 - np.asarray(complement, dtype=float)), 0.0), dtype=float)
    full = x == n
    if full.any():
        # beta**(1/n) = exp(y): y carries 2 ulps of |y|, exp one more
        y = np.log(beta) / n[full].astype(float)
        out[full] = np.maximum(out[full], fl.down(np.exp(y) * (1.0 - (2.0 * np.abs(y) + 4.0) * fl.ULP)))
    direct = (x > 0) & (x < n) & (out < 1e-3)
    if direct.any():
        out[direct] = np.maximum(out[direct], _unique_map(safe_quantile, "lower", x[direct], n[direct], beta))
    out[x == 0] = 0.0
    return out


def _mp_map(func, x, n, beta, dps):
    from . import _mp_beta

    fn = getattr(_mp_beta, func)
    xb, nb = np.broadcast_arrays(x, n)
    out = np.empty(xb.shape, dtype=object)
    for idx in np.ndindex(xb.shape):
        out[idx] = fn(int(xb[idx]), int(nb[idx]), beta, dps)
    return out if out.ndim else out[()]


def _result(arr):
    arr = np.asarray(arr)
    return float(arr) if arr.ndim == 0 else arr


def clopper_pearson_upper(x, n, beta, *, dps=None):
    """One-sided Clopper-Pearson upper bound on a binomial proportion.

    Parameters
    ----------
    x : int or array_like of int
        Successes, ``0 <= x <= n``.
    n : int or array_like of int
        Trials, ``n >= 1``; broadcast against ``x``.
    beta : float
        Failure probability of the bound, in (0, 1).
    dps : int, optional
        If given, compute with mpmath at this many digits and return ``mpmath.mpf``
        values (an object array for array input).

    Returns
    -------
    float or ndarray
        ``u`` with P(Bin(n, p) <= x) = beta at p = u. With probability at least
        1 - beta over the trials, the true proportion is at most ``u``. Float64 results
        are rounded up.

    Examples
    --------
    >>> clopper_pearson_upper(0, 100, 0.05)  # 1 - 0.05**(1/100), rounded up
    0.0295...
    >>> clopper_pearson_upper([0, 50, 100], 100, 0.05)
    array([0.0295..., 0.58..., 1.        ])
    """
    x, n, beta = _validate(x, n, beta)
    if dps is not None:
        return _mp_map("mp_cp_upper", x, n, beta, dps)
    return _result(_upper_float(x, n, beta))


def clopper_pearson_lower(x, n, beta, *, dps=None):
    """One-sided Clopper-Pearson lower bound on a binomial proportion.

    With probability at least 1 - beta over the n trials, the true proportion is at
    least the returned value (rounded down in float64). For bounds close to 1 use
    :func:`clopper_pearson_lower_complement`, which keeps full relative precision.

    Parameters are those of :func:`clopper_pearson_upper`.

    Examples
    --------
    >>> clopper_pearson_lower([0, 95, 100], 100, 0.05)
    array([0.        , 0.89..., 0.97...])
    """
    x, n, beta = _validate(x, n, beta)
    if dps is not None:
        from . import _mp_beta
        import mpmath

        comp = _mp_map("mp_cp_lower_complement", x, n, beta, dps)
        with mpmath.workdps(dps):
            if isinstance(comp, np.ndarray):
                return np.array([+(1 - v) for v in comp.ravel()], dtype=object).reshape(comp.shape)
            return +(1 - comp)
    return _result(_lower_float(x, n, beta))


def clopper_pearson_lower_complement(x, n, beta, *, dps=None):
    """``1 - lower(x)``, computed directly (as ``upper(n - x)``) and rounded up.

    A lower bound of 1 - 1e-12 is stored in float64 with only about four correct
    digits of its distance to 1; this function returns that distance to full precision.

    Examples
    --------
    >>> c = clopper_pearson_lower_complement(10**12 - 5, 10**12, 1e-4)
    >>> 1.9e-11 < c < 2.0e-11
    True
    """
    x, n, beta = _validate(x, n, beta)
    if dps is not None:
        return _mp_map("mp_cp_lower_complement", x, n, beta, dps)
    return _result(_upper_float(n - x, n, beta))
