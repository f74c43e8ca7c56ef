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
error, and within 2e-12 relative of it. A lower bound and its complement are the same
root, proven by one tail evaluation (:mod:`topk_bounds._cp_pair`; the general solver of
:mod:`topk_bounds._cp_float` takes what that leaves, and levels above 1/2). A bound that
cannot be found raises ``ArithmeticError``; it is never replaced by the trivial 0 or 1.
With ``dps=N`` the bounds are computed with mpmath to N digits
(:mod:`topk_bounds._mp_beta`), rounded toward the safe side too.

Supported: ``1 <= n <= 10**12`` (:data:`topk_bounds.limits.N_MAX`), levels
``1e-300 <= beta < 1`` (:data:`topk_bounds.limits.LEVEL_MIN`) and ``dps >= 15``
(:data:`topk_bounds.limits.DPS_MIN`); anything else is a ``ValueError`` naming the
argument and the value as given, checked before any arithmetic.

References
----------
.. [1] C. J. Clopper, E. S. Pearson, "The use of confidence or fiducial limits
   illustrated in the case of the binomial", Biometrika 26 (1934).
"""

from __future__ import annotations

import contextlib
import contextvars
import numbers
from decimal import Decimal
from fractions import Fraction
from typing import Iterator

import numpy as np

from . import _float as fl
from ._cp_pair import safe_pair
from .limits import DPS_MIN, LEVEL_MIN, N_MAX

__all__ = [
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "clopper_pearson_lower_complement",
]

_N_MAX_TEXT = f"10**{len(str(N_MAX)) - 1}" if N_MAX == 10 ** (len(str(N_MAX)) - 1) else str(N_MAX)


# --------------------------------------------------------------------------------------
# argument checking: every range is checked on the values as given, before any cast
# --------------------------------------------------------------------------------------
def _where(arr, mask) -> str:
    """`` at index i`` of the first True in ``mask`` (nothing for a scalar)."""
    if arr.ndim == 0:
        return ""
    idx = tuple(int(i) for i in np.argwhere(mask)[0])
    return f" at index {idx[0] if len(idx) == 1 else idx}"


def _show(v) -> str:
    """A user's number as they would write it (no numpy type names)."""
    if isinstance(v, (np.floating, float)):
        return repr(float(v))
    if isinstance(v, (np.integer, int)) and not isinstance(v, (bool, np.bool_)):
        return str(int(v))
    return repr(v)


def _first(value, arr, mask):
    """The first flagged element as the user gave it (exactly, also for Python ints that
    numpy turned into floats)."""
    if arr.ndim == 0:
        return value if not isinstance(value, np.ndarray) else arr[()]
    idx = tuple(np.argwhere(mask)[0])
    if not isinstance(value, np.ndarray):
        try:
            return np.asarray(value, dtype=object)[idx]
        except (ValueError, IndexError):
            pass
    return arr[idx]


def _as_counts(name: str, value, low: int, message) -> np.ndarray:
    """``value`` as an int64 array, every element an integer in ``low..N_MAX``.

    ``message(shown, where)`` is the message for an element outside that range.
    """
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        raise ValueError(f"{name} must be an integer or a rectangular array of integers, got {value!r}") from None
    kind = arr.dtype.kind
    if kind == "O":  # Python ints beyond int64, or mixed objects: check one by one
        flat = arr.ravel()
        bad = np.array([isinstance(v, (bool, np.bool_))
                        or not (isinstance(v, (numbers.Integral, np.integer))
                                or (isinstance(v, (float, np.floating)) and np.isfinite(v) and v == int(v)))
                        for v in flat], dtype=bool).reshape(arr.shape)
        if bad.any():
            v = _first(value, arr, bad)
            what = "the non-integral value " if isinstance(v, (float, np.floating)) and np.isfinite(v) else ""
            raise ValueError(f"{name} must hold integers, got {what}{_show(v)}{_where(arr, bad)}")
        ints = np.array([int(v) for v in flat], dtype=object).reshape(arr.shape)
        bad_range = (ints < low) | (ints > N_MAX)
        if bad_range.any():
            raise ValueError(message(_show(_first(value, ints, bad_range)), _where(arr, bad_range)))
        return ints.astype(np.int64)
    if kind == "f":
        nonfinite = ~np.isfinite(arr)
        if nonfinite.any():
            raise ValueError(f"{name} must hold integers, got {_show(_first(value, arr, nonfinite))}"
                             f"{_where(arr, nonfinite)}")
        fractional = arr != np.floor(arr)
        if fractional.any():
            raise ValueError(f"{name} must hold integers, got the non-integral value "
                             f"{_show(_first(value, arr, fractional))}{_where(arr, fractional)}")
    elif kind not in "iu":
        shown = repr(value) if arr.ndim == 0 else f"an array of dtype {arr.dtype}"
        raise ValueError(f"{name} must hold integers, got {shown}")
    bad_range = (arr < low) | (arr > N_MAX)  # exact for uint64 and int64, no wrap-around
    if bad_range.any():
        raise ValueError(message(_show(_first(value, arr, bad_range)), _where(arr, bad_range)))
    return arr.astype(np.int64)


def _level(beta, exact: bool):
    """The level as a float rounded *down* (a smaller level widens every bound), or, for
    the dps path (``exact``), as an ``mpmath.mpf``: exactly the value given for an mpf or
    a float; a rational or Decimal to 200 bits past its denominator's (its error is far
    inside the widening of the result)."""
    message = (f"beta must be a probability in [{LEVEL_MIN:g}, 1) (the floor is "
               f"topk_bounds.limits.LEVEL_MIN), got {_show(beta)}")
    if isinstance(beta, (bool, np.bool_, str, bytes)) or not isinstance(beta, (numbers.Real, Decimal)):
        if not (isinstance(beta, np.ndarray) and beta.ndim == 0 and beta.dtype.kind == "f"):
            raise ValueError(message)
        beta = beta[()]
    try:
        if not LEVEL_MIN <= beta < 1:  # exact comparisons; NaN fails
            raise ValueError(message)
    except TypeError:
        raise ValueError(message) from None
    if exact:
        import mpmath

        if isinstance(beta, mpmath.mpf):
            return beta
        if isinstance(beta, (float, np.floating)) and float(beta) == beta:
            return mpmath.mpf(float(beta))  # a double is a binary fraction: exact
        ratio = Fraction(beta) if not isinstance(beta, np.floating) else Fraction(*beta.as_integer_ratio())
        with mpmath.workprec(2 * ratio.denominator.bit_length() + 200):
            return mpmath.mpf(ratio.numerator) / ratio.denominator
    b = float(beta)
    return float(np.nextafter(b, 0.0)) if b > beta else b


def _check_dps(dps) -> int:
    if isinstance(dps, (bool, np.bool_)) or not isinstance(dps, (numbers.Integral, np.integer)) or dps < DPS_MIN:
        raise ValueError(f"dps must be None or an integer >= {DPS_MIN} (topk_bounds.limits.DPS_MIN), got {dps!r}")
    return int(dps)


def _validate(x, n, beta, dps=None):
    """Checked ``(x, n, beta, dps)``: int64 arrays with 0 <= x <= n <= N_MAX and n >= 1,
    and the level (a float rounded down, or an exact mpf when ``dps`` is given)."""
    if dps is not None:
        dps = _check_dps(dps)
    n_arr = _as_counts("n", n, 1, lambda v, where: f"n must lie in 1..{_N_MAX_TEXT} "
                       f"(topk_bounds.limits.N_MAX), got n = {v}{where}")
    x_arr = _as_counts("x", x, 0, lambda v, where: f"x must lie in 0..n (n <= {_N_MAX_TEXT}), "
                       f"got x = {v}{where}")
    try:
        xb, nb = np.broadcast_arrays(x_arr, n_arr)
    except ValueError:
        raise ValueError(f"x (shape {x_arr.shape}) and n (shape {n_arr.shape}) must broadcast together") from None
    bad = xb > nb
    if np.any(bad):
        raise ValueError(f"x must lie in 0..n, got x = {xb[bad].ravel()[0]} with n = {nb[bad].ravel()[0]}"
                         f"{_where(xb, bad)}")
    return x_arr, n_arr, _level(beta, exact=dps is not None), dps


def _check_internal(n, beta: float):
    """The ranges the float path is proven for (callers validate; this guards)."""
    if not LEVEL_MIN <= beta < 1.0:
        raise ValueError(f"beta must be a probability in [{LEVEL_MIN:g}, 1) "
                         f"(topk_bounds.limits.LEVEL_MIN), got {beta!r}")
    if np.size(n) and not 1 <= np.min(n) <= np.max(n) <= N_MAX:
        bad = np.min(n) if np.min(n) < 1 else np.max(n)
        raise ValueError(f"n must lie in 1..{_N_MAX_TEXT} (topk_bounds.limits.N_MAX), got n = {bad}")


# --------------------------------------------------------------------------------------
# float64
# --------------------------------------------------------------------------------------
def _pair_float(x, n, beta):
    """``(lower(x), 1 - lower(x))`` in float64 for validated int arrays: lower bounds
    rounded down, complements (``= upper(n - x)``) rounded up.

    Both are the root of one equation, and :func:`topk_bounds._cp_pair.safe_pair` proves
    both from one float point (for ``2 <= x <= n - 1``); the edges are closed forms. A
    lower bound keeps full relative precision everywhere (solved directly where it is
    small, as ``1 - c`` rounded down where it is within 2**-10 of 1), and so does the
    complement.
    """
    _check_internal(n, beta)
    x, n = np.broadcast_arrays(x, n)
    lower = np.zeros(x.shape)
    comp = np.ones(x.shape)
    full = x == n  # upper(0) = 1 - beta**(1/n), lower(n) = beta**(1/n)
    one = (x == 1) & (n > 1)  # upper(n - 1) = (1 - beta)**(1/n), lower(1) = 1 - that
    mid = (x > 1) & (x < n)
    if full.any():
        nf = n[full].astype(float)
        # 1 - beta**(1/n): log, divide and expm1 each within an ulp
        comp[full] = np.minimum(fl.up(-np.expm1(np.log(beta) / nf) * (1.0 + 8.0 * fl.ULP)), 1.0)
        # beta**(1/n) = exp(y): y carries 2 ulps of |y|, exp one more
        y = np.log(beta) / nf
        lower[full] = np.maximum(np.maximum(fl.down(1.0 - comp[full]), 0.0),
                                 fl.down(np.exp(y) * (1.0 - (2.0 * np.abs(y) + 4.0) * fl.ULP)))
    if one.any():
        # (1 - beta)**(1/n) = exp(y), y = log1p(-beta) / n: y carries 2 ulps of |y|, exp
        # one more; 1 - that = -expm1(y), whose relative condition number is below 1 for
        # y < 0 (below 2.2e-308 the result is subnormal; the final step down covers it)
        y = np.log1p(-beta) / n[one].astype(float)
        comp[one] = np.minimum(fl.up(np.exp(y) * (1.0 + (2.0 * np.abs(y) + 4.0) * fl.ULP)), 1.0)
        lower[one] = np.maximum(np.maximum(fl.down(1.0 - comp[one]), 0.0),
                                fl.down(-np.expm1(y) * (1.0 - 8.0 * fl.ULP)))
    if mid.any():
        lower[mid], comp[mid] = _unique_pairs(x[mid], n[mid], beta)
    return lower, comp


def _unique_pairs(x, n, beta):
    """:func:`~topk_bounds._cp_pair.safe_pair` computed once per distinct (x, n), and not
    at all for pairs held by an active :func:`_cache_bounds`.

    Counts repeat a lot (many labels share small counts), and each bound is an
    elementwise computation, so this changes no value, only the cost.
    """
    if n.size and np.all(n == n.flat[0]):
        ux, inverse = np.unique(x, return_inverse=True)
        un = np.full(ux.shape, n.flat[0])
    else:
        pairs, inverse = np.unique(np.stack([x.ravel(), n.ravel()], axis=1), axis=0, return_inverse=True)
        ux, un = pairs[:, 0], pairs[:, 1]
    cache = _CACHE.get()
    if cache is None:
        low, comp = safe_pair(ux, un, beta)
    else:
        low, comp, miss = cache.lookup(beta, ux, un)
        if miss.any():
            low[miss], comp[miss] = new = safe_pair(ux[miss], un[miss], beta)
            cache.store(beta, ux[miss], un[miss], *new)
    inverse = inverse.reshape(x.shape)
    return low[inverse], comp[inverse]


class _PairCache:
    """Proven ``(lower(x), 1 - lower(x))`` pairs by level and ``(n, x)``, at most
    ``max_entries`` of them (then it stops taking new ones).

    Keys are complex numbers ``n + x j`` (both exact in float64 below 2**53), which numpy
    sorts by n, then x: lookups are one ``searchsorted``, insertions one merge.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = int(max_entries)
        self.size = 0
        self._tables: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def lookup(self, beta: float, x, n):
        """``(lower, complement, miss)`` for sorted distinct pairs; NaN where missed."""
        keys = n.astype(np.float64) + 1j * x.astype(np.float64)
        lower, comp = np.full(x.shape, np.nan), np.full(x.shape, np.nan)
        table = self._tables.get(beta)
        if table is None:
            return lower, comp, np.ones(x.shape, bool)
        held, t_low, t_comp = table
        idx = np.minimum(np.searchsorted(held, keys), held.size - 1)
        hit = held[idx] == keys
        lower[hit], comp[hit] = t_low[idx[hit]], t_comp[idx[hit]]
        return lower, comp, ~hit

    def store(self, beta: float, x, n, lower, comp) -> None:
        room = self.max_entries - self.size
        if room <= 0:
            return
        keys = (n.astype(np.float64) + 1j * x.astype(np.float64))[:room]
        order = np.argsort(keys)  # np.insert keeps sorted order only for sorted keys
        keys, lower, comp = keys[order], lower[:room][order], comp[:room][order]
        held, t_low, t_comp = self._tables.get(beta, (np.empty(0, complex), np.empty(0), np.empty(0)))
        at = np.searchsorted(held, keys)
        self._tables[beta] = (np.insert(held, at, keys), np.insert(t_low, at, lower),
                              np.insert(t_comp, at, comp))
        self.size += keys.size


_CACHE: contextvars.ContextVar[_PairCache | None] = contextvars.ContextVar("topk_bounds_pair_cache",
                                                                          default=None)


@contextlib.contextmanager
def _cache_bounds(max_entries: int = 2**18) -> Iterator[_PairCache]:
    """Within this context (per thread), float bounds already computed are reused.

    For a caller that certifies a stream in chunks (``topk-bounds certify``): counts
    repeat across the rows of a file, and a bound depends only on its own (x, n, level),
    so reusing one changes no value. At most ``max_entries`` pairs are kept (32 bytes
    each: 8 MiB by default).
    """
    cache = _PairCache(max_entries)
    token = _CACHE.set(cache)
    try:
        yield cache
    finally:
        _CACHE.reset(token)


def _upper_float(x, n, beta):
    """Safe (rounded-up) float64 upper bounds for validated int arrays: the complements
    of the lower bounds of ``n - x``."""
    x, n = np.broadcast_arrays(x, n)
    return _pair_float(n - x, n, beta)[1]


def _lower_float(x, n, beta):
    """Safe (rounded-down) float64 lower bounds for validated int arrays."""
    return _pair_float(x, n, beta)[0]


# --------------------------------------------------------------------------------------
# arbitrary precision
# --------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------
def clopper_pearson_upper(x, n, beta, *, dps=None):
    """One-sided Clopper-Pearson upper bound on a binomial proportion.

    Parameters
    ----------
    x : int or array_like of int
        Successes, ``0 <= x <= n``.
    n : int or array_like of int
        Trials, ``1 <= n <= 10**12`` (``topk_bounds.limits.N_MAX``); broadcast against ``x``.
    beta : float or mpmath.mpf
        Failure probability of the bound, ``1e-300 <= beta < 1``
        (``topk_bounds.limits.LEVEL_MIN``). The float64 path rounds a level that is not
        a double down to one; the ``dps`` path takes it exactly (a float as the binary
        number it is, an ``mpf`` as it is).
    dps : int, optional
        If given (an integer >= 15, ``topk_bounds.limits.DPS_MIN``), compute with mpmath
        at this many digits and return ``mpmath.mpf`` values (an object array for array
        input), each rounded toward its safe side.

    Returns
    -------
    float or ndarray or mpmath.mpf
        ``u`` with P(Bin(n, p) <= x) = beta at p = u. With probability at least
        1 - beta over the trials, the true proportion is at most ``u``. The float64
        result is never below ``u`` (proven by a tail evaluation with a bounded error)
        and within 2e-12 relative of it (1.8e-12 at worst over the 3,600 bounds of the
        edge sweep in ``benchmarks/bench_accuracy.py``); the ``dps`` result is rounded up, within
        ``2**(3 - prec)`` of ``u`` (``prec = mpmath.libmp.dps_to_prec(dps)`` bits).

    Raises
    ------
    ValueError
        If an argument lies outside the ranges above; the message names it and its value.
    ArithmeticError
        If a bound cannot be found (never seen in the sweeps of ``benchmarks/bench_accuracy.py``);
        a bound is never silently replaced by the trivial 1.

    Examples
    --------
    >>> clopper_pearson_upper(0, 100, 0.05)  # 1 - 0.05**(1/100), rounded up
    0.0295...
    >>> clopper_pearson_upper([0, 50, 100], 100, 0.05)
    array([0.0295..., 0.58..., 1.        ])
    """
    x, n, beta, dps = _validate(x, n, beta, dps)
    if dps is not None:
        return _mp_map("mp_cp_upper", x, n, beta, dps)
    return _result(_upper_float(x, n, beta))


def clopper_pearson_lower(x, n, beta, *, dps=None):
    """One-sided Clopper-Pearson lower bound on a binomial proportion.

    With probability at least 1 - beta over the n trials, the true proportion is at
    least the returned value. For bounds close to 1 use
    :func:`clopper_pearson_lower_complement`, which keeps full relative precision.
    Parameters are those of :func:`clopper_pearson_upper`.

    Returns
    -------
    float or ndarray or mpmath.mpf
        ``l`` with P(Bin(n, p) >= x) = beta at p = l, the beta-quantile of
        Beta(x, n - x + 1). The float64 result is never above ``l`` and within
        2e-12 relative of it (1.8e-12 at worst in the edge sweep): solved for directly
        (below 2.2e-308, possible only for x = 1, within 1e-323 absolute); within 2**-10
        of 1 as ``1 - complement`` rounded down, where that keeps full relative precision
        (the same proof gives both, :mod:`topk_bounds._cp_pair`). The ``dps``
        result is solved directly too (a bound of 1e-22 keeps all its digits), rounded
        down, within ``2**(3 - prec)`` of ``l``.

    Examples
    --------
    >>> clopper_pearson_lower([0, 95, 100], 100, 0.05)
    array([0.        , 0.89..., 0.97...])
    >>> import mpmath
    >>> mpmath.nstr(clopper_pearson_lower(1, 10**12, 1e-10, dps=40), 40)  # 1-(1-b)**(1/n)
    '1.000000000050000000364354806524745396444e-22'
    """
    x, n, beta, dps = _validate(x, n, beta, dps)
    if dps is not None:
        return _mp_map("mp_cp_lower", x, n, beta, dps)
    return _result(_lower_float(x, n, beta))


def clopper_pearson_lower_complement(x, n, beta, *, dps=None):
    """``1 - lower(x)``, computed directly (as ``upper(n - x)``) and rounded up.

    A lower bound of 1 - 1e-12 is stored in float64 with only about four correct
    digits of its distance to 1; this function returns that distance to full precision
    (the accuracy of :func:`clopper_pearson_upper`). Parameters are those of
    :func:`clopper_pearson_upper`.

    Examples
    --------
    >>> c = clopper_pearson_lower_complement(10**12 - 5, 10**12, 1e-4)
    >>> 1.9e-11 < c < 2.0e-11
    True
    """
    x, n, beta, dps = _validate(x, n, beta, dps)
    if dps is not None:
        return _mp_map("mp_cp_lower_complement", x, n, beta, dps)
    return _result(_upper_float(n - x, n, beta))
