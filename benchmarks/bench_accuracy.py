"""Accuracy of the float64 radii against the mpmath path, and what safe rounding prevents.

Two sets of random inputs (seeded):

A. :func:`topk_bounds.topk_radius` on random bounds: ``a`` uniform in (0.01, 0.99), within
   1e-15 .. 1e-1 of 1, or as small as 1e-20; ``c - 1`` between k and 30 other labels
   with Dirichlet-shaped upper bounds, some summing past ``1 - a`` (clipped), some tiny;
   k = 1..5; sigma in {0.12, 0.25, 0.5, 1}. Reference: the same call with ``dps=50``.
B. :func:`topk_bounds.certify` on random count rows, n = 10^U(2, 12) (up to 1e12), c = 2..10,
   a dominant label, sometimes only a handful of samples outside it. Reference:
   ``topk_bounds.certify.certify_exact`` (the exact Clopper-Pearson bounds at 60 digits fed
   to ``topk_bounds.radius.mp_radius`` at 50 digits).
C. as B, in the region where scipy's ``betainccinv`` is least accurate: every other label
   has at most 40 samples and n = 10^U(5, log10 5e9).
D. the Clopper-Pearson upper bound alone in that region: scipy's ``betainccinv`` (the
   candidate every float code starts from) and :func:`topk_bounds.clopper_pearson_upper`
   against the same function with ``dps=50``.
E. a sweep of the Clopper-Pearson bounds over the float path's edges: x near 999-1000
   (where scipy's inverse is 0.4% to a factor 2 off), next to the switches of the tail
   evaluation (``SMALL_X`` = 128, ``SMALL_X_G`` = 4096), small x, and each of these as
   n - x; n = 10^U(3, 12); beta from ``limits.LEVEL_MIN`` = 1e-300 to 1/2 (a tenth of
   the levels in (1/2, 1)). Upper bounds, lower bounds and complements against the
   ``dps=30`` path (rounded outward, within 1e-29), and scipy's inverse for comparison.
   ``tests/test_bounds.py`` runs 36 cases of the same sweep.

For every input the table reports the largest relative difference |float - exact| / |exact|
of the float path, whether the float radius ever exceeded the exact one (it must not), and
the same for a *naive* float64 radius: plain ``scipy.special.ndtri``, ``betaincinv`` /
``betainccinv`` and ``scipy.optimize.brentq`` (at its tightest tolerance, on the same
log-form equation) with no directed rounding and no margins. A naive radius above the
exact one is a certificate that claims more than the bounds prove.

Usage::

    python benchmarks/bench_accuracy.py            # a few minutes on 2 shared cores
    python benchmarks/bench_accuracy.py --quick    # under a minute

Writes ``benchmarks/results/accuracy.{json,md,png}`` (``accuracy_quick.*`` with
``--quick``) and, in full mode, copies the figure to ``docs/figures/``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import mpmath
import numpy as np
from scipy import optimize, special

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_certify import machine_info, machine_line, markdown_table, write_results  # noqa: E402
from topk_bounds import (certify, clopper_pearson_lower, clopper_pearson_lower_complement,  # noqa: E402
                         clopper_pearson_upper, limits, topk_radius)
from topk_bounds._cp_float import SMALL_X, SMALL_X_G  # noqa: E402
from topk_bounds.certify import certify_exact  # noqa: E402

DPS = 50
ALPHA = 0.001


# --------------------------------------------------------------------------------------
# the naive float64 radius: no directed rounding, no margins
# --------------------------------------------------------------------------------------
def naive_radius(a: float, b, k: int, sigma: float) -> float:
    """Theorem 1 in plain float64: ndtri, float sums and brentq on the log-form equation."""
    if a <= 0.0:
        return -math.inf
    b = np.minimum(np.asarray(b, dtype=float), 1.0 - a)
    if k > b.size:
        return math.inf
    top = np.sort(b)[::-1][:k]
    za = float(special.ndtri(a))
    best = -math.inf
    for t in range(1, k + 1):
        b_t = min(float(np.sum(top[k - t:])), 1.0 - a)
        if b_t <= 0.0:
            return math.inf
        zb = float(special.ndtri(b_t))
        if math.isinf(zb):  # 1 - a rounded to 1: this t certifies nothing in float64
            continue
        if t == 1:
            s = 0.5 * (za - zb)
        else:
            logt = math.log(t)

            def h(s):
                return float(special.log_ndtr(za - s) - special.log_ndtr(zb + s)) + logt

            lo = 0.5 * (za - zb)
            hi = lo + 1.0
            while h(hi) > 0:
                lo, hi = hi, hi + 2.0 * (hi - lo)
            s = optimize.brentq(h, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps)
        best = max(best, s)
    return sigma * best


def naive_certify(counts: np.ndarray, label: int, k: int, sigma: float, alpha: float) -> float:
    """SimuEM bounds from plain betaincinv / betainccinv, then :func:`naive_radius`."""
    n = int(counts.sum())
    beta = alpha / counts.size
    x = int(counts[label])
    a = float(special.betaincinv(x, n - x + 1, beta)) if x > 0 else 0.0
    others = np.delete(counts, label).astype(float)
    b = np.where(others < n, special.betainccinv(others + 1, n - others, beta), 1.0)
    return naive_radius(a, b, k, sigma)


# --------------------------------------------------------------------------------------
# random inputs
# --------------------------------------------------------------------------------------
def random_bounds(rng: np.random.Generator):
    k = int(rng.integers(1, 6))
    m = int(rng.integers(k, 31))
    kind = rng.integers(0, 3)
    if kind == 0:
        a = rng.uniform(0.01, 0.99)
    elif kind == 1:
        a = 1.0 - 10.0 ** rng.uniform(-15, -1)
    else:
        a = 10.0 ** rng.uniform(-20, -1)
    b = rng.dirichlet(np.full(m, 0.3)) * (1.0 - a) * rng.uniform(0.3, 1.3)
    if rng.uniform() < 0.3:
        b *= 10.0 ** rng.uniform(-10, 0)
    b = np.clip(b, 0.0, 1.0)
    sigma = float(rng.choice([0.12, 0.25, 0.5, 1.0]))
    return float(a), b, k, sigma


def random_counts(rng: np.random.Generator):
    c = int(rng.integers(2, 11))
    k = int(rng.integers(1, c))
    n = int(10.0 ** rng.uniform(2, 12))
    probs = rng.dirichlet(np.full(c, 0.3))
    label = int(rng.integers(0, c))
    if rng.uniform() < 0.5:  # a dominant label, close to 1 for large n
        rest = 10.0 ** rng.uniform(-11, -0.3)
        probs = probs * rest
        probs[label] += 1.0 - probs.sum()
    counts = rng.multinomial(n, probs / probs.sum()).astype(np.int64)
    if counts.sum() == 0:
        counts[label] = 1
    sigma = float(rng.choice([0.12, 0.25, 0.5, 1.0]))
    return counts, label, k, sigma


def weak_spot_counts(rng: np.random.Generator):
    """Rows where scipy's betainccinv is least accurate: other counts <= 40, n in 1e5..5e9."""
    c = int(rng.integers(2, 11))
    k = int(rng.integers(1, c))
    n = int(10.0 ** rng.uniform(5, math.log10(5e9)))
    label = int(rng.integers(0, c))
    counts = rng.integers(0, 41, size=c).astype(np.int64)
    counts[label] = n - (counts.sum() - counts[label])
    sigma = float(rng.choice([0.12, 0.25, 0.5, 1.0]))
    return counts, label, k, sigma


# --------------------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------------------
def compare(ours: float, naive: float, exact) -> dict:
    """Relative differences (as floats) and who overstates; None fields for infinite cases."""
    if mpmath.isinf(exact) or not math.isfinite(ours):
        return {"finite": False, "ours_match_inf": ours == float(exact),
                "naive_over": bool(naive > float(exact)) if not math.isnan(naive) else False}
    with mpmath.workdps(DPS):
        e = mpmath.mpf(exact)
        scale = abs(e) if e != 0 else mpmath.mpf(1)
        d_ours = mpmath.mpf(ours) - e
        d_naive = mpmath.mpf(naive) - e if math.isfinite(naive) else mpmath.inf
        return {
            "finite": True,
            "exact": float(e),
            "rel_ours": float(abs(d_ours) / scale),
            "signed_ours": float(d_ours / scale),
            "signed_naive": float(d_naive / scale) if math.isfinite(naive) else math.nan,
            "abs_ours": float(abs(d_ours)),
            "ours_over": bool(d_ours > 0),
            "rel_naive": float(abs(d_naive) / scale) if math.isfinite(naive) else math.inf,
            "naive_over": bool(d_naive > 0),
            "naive_over_rel": float(d_naive / scale) if d_naive > 0 and math.isfinite(naive)
            else 0.0,
        }


def run_set(name: str, n_cases: int, rng: np.random.Generator, make, evaluate) -> dict:
    rows = []
    start = time.time()
    for i in range(n_cases):
        case = make(rng)
        ours, naive, exact = evaluate(*case)
        rows.append(compare(ours, naive, exact))
        if (i + 1) % max(1, n_cases // 10) == 0:
            print(f"  {name}: {i + 1}/{n_cases} ({time.time() - start:.0f} s)", flush=True)
    fin = [r for r in rows if r["finite"]]
    rel = np.array([r["rel_ours"] for r in fin])
    rel_naive = np.array([r["rel_naive"] for r in fin])
    return {
        "set": name, "cases": n_cases, "finite": len(fin),
        "max_rel_ours": float(rel.max()) if rel.size else 0.0,
        "median_rel_ours": float(np.median(rel)) if rel.size else 0.0,
        "max_abs_ours": float(max((r["abs_ours"] for r in fin), default=0.0)),
        "ours_overstated": int(sum(r["ours_over"] for r in fin)),
        "infinite_mismatch": int(sum(not r["ours_match_inf"] for r in rows if not r["finite"])),
        "naive_overstated": int(sum(r["naive_over"] for r in rows)),
        "max_rel_naive": float(rel_naive[np.isfinite(rel_naive)].max()) if rel_naive.size else 0.0,
        "max_naive_overstatement_rel": float(max((r.get("naive_over_rel", 0.0) for r in fin),
                                                 default=0.0)),
        "rel_ours_all": rel.tolist(),
        "rel_naive_all": rel_naive.tolist(),
        "signed_ours_all": [r["signed_ours"] for r in fin],
        "signed_naive_all": [r["signed_naive"] for r in fin],
    }


def eval_bounds(a, b, k, sigma):
    return (topk_radius(a, b, k, sigma), naive_radius(a, b, k, sigma),
            topk_radius(a, b, k, sigma, dps=DPS))


def eval_counts(counts, label, k, sigma):
    ours = float(certify(counts, label, k=k, sigma=sigma, alpha=ALPHA).radius[0])
    return ours, naive_certify(counts, label, k, sigma, ALPHA), \
        certify_exact(counts, label, k=k, sigma=sigma, alpha=ALPHA, dps=DPS)


def cp_weak_spot(n_cases: int, rng: np.random.Generator) -> dict:
    """scipy's betainccinv and our verified upper bound against the dps=50 bound."""
    worst_scipy, worst_ours, scipy_low, ours_low = 0.0, 0.0, 0, 0
    for _ in range(n_cases):
        x = int(rng.integers(1, 41))
        n = int(10.0 ** rng.uniform(5, math.log10(5e9)))
        beta = float(10.0 ** rng.uniform(-7, -2))
        exact = clopper_pearson_upper(x, n, beta, dps=DPS)
        cand = float(special.betainccinv(x + 1, n - x, beta))
        ours = clopper_pearson_upper(x, n, beta)
        with mpmath.workdps(DPS):
            d_scipy = (mpmath.mpf(cand) - exact) / exact
            d_ours = (mpmath.mpf(ours) - exact) / exact
        worst_scipy = max(worst_scipy, abs(float(d_scipy)))
        worst_ours = max(worst_ours, abs(float(d_ours)))
        scipy_low += int(d_scipy < 0)
        ours_low += int(d_ours < 0)
    return {"set": "D: Clopper-Pearson upper bound, x <= 40, n in 1e5..5e9", "cases": n_cases,
            "max_rel_scipy_betainccinv": worst_scipy, "scipy_below_exact": scipy_low,
            "max_rel_ours": worst_ours, "ours_below_exact": ours_low}


SWEEP_X = [1, 2, 5, 40, SMALL_X - 1, SMALL_X, SMALL_X + 1, 998, 999, 1000, 1001,
           SMALL_X_G - 1, SMALL_X_G, SMALL_X_G + 1, 20000]
SWEEP_BETA = [limits.LEVEL_MIN, 1e-200, 1e-100, 1e-30, 1e-10, 1e-5, 1e-3, 0.05, 0.3, 0.5]
SWEEP_DPS = 30


def sweep_case(rng: np.random.Generator):
    """(x, n, beta) for set E (see the module docstring)."""
    while True:
        x, n = int(rng.choice(SWEEP_X)), int(10.0 ** rng.uniform(3, 12))
        if x < n:
            break
    if rng.uniform() < 0.3:
        x = n - x
    u = rng.uniform()
    if u < 0.1:
        beta = float(rng.uniform(0.5, 1.0 - 1e-9))
    elif u < 0.4:
        beta = float(10.0 ** rng.uniform(-300, math.log10(0.5)))
    else:
        beta = float(rng.choice(SWEEP_BETA))
    return x, n, beta


def cp_sweep(n_cases: int, rng: np.random.Generator) -> dict:
    """Set E: every float bound against the dps path, and scipy's inverse."""
    kinds = {
        "upper": (clopper_pearson_upper, True,
                  lambda x, n, b: special.betainccinv(x + 1, n - x, b) if x < n else 1.0),
        "lower": (clopper_pearson_lower, False,
                  lambda x, n, b: special.betaincinv(x, n - x + 1, b) if x > 0 else 0.0),
        "complement": (clopper_pearson_lower_complement, True,
                       lambda x, n, b: special.betainccinv(n - x + 1, x, b) if x > 0 else 1.0),
    }
    stats = {k: {"bounds": 0, "max_rel": 0.0, "worst": None, "unsafe": 0,
                 "errors": 0, "scipy_max_rel": 0.0, "scipy_unsafe": 0, "scipy_nan": 0}
             for k in kinds}
    start = time.time()
    for i in range(n_cases):
        x, n, beta = sweep_case(rng)
        for kind, (func, up, scipy_inv) in kinds.items():
            st = stats[kind]
            st["bounds"] += 1
            exact = func(x, n, beta, dps=SWEEP_DPS)
            try:
                ours = func(x, n, beta)
            except ArithmeticError:
                st["errors"] += 1
                continue
            with np.errstate(all="ignore"):
                cand = float(scipy_inv(x, n, beta))
            with mpmath.workdps(SWEEP_DPS + 10):
                e = mpmath.mpf(exact)
                # the reference is rounded outward by < 1e-29: a float on the wrong side
                # of it by more than that is unsafe
                slack = abs(e) * mpmath.mpf("1e-28")
                st["unsafe"] += int(mpmath.mpf(ours) < e - slack if up else mpmath.mpf(ours) > e + slack)
                if e == 0:
                    continue
                # relative, also for subnormal lower bounds (x = 1 at the floor: 1e-312)
                rel = float(max(abs(mpmath.mpf(ours) - e) - mpmath.mpf("1e-323"), 0) / e)
                if rel > st["max_rel"]:
                    st["max_rel"], st["worst"] = rel, [x, n, beta]
                if math.isnan(cand):
                    st["scipy_nan"] += 1
                else:
                    d = (mpmath.mpf(cand) - e) / e
                    st["scipy_max_rel"] = max(st["scipy_max_rel"], abs(float(d)))
                    st["scipy_unsafe"] += int(d < 0 if up else d > 0)
        if (i + 1) % max(1, n_cases // 10) == 0:
            print(f"  E: {i + 1}/{n_cases} ({time.time() - start:.0f} s)", flush=True)
    return {"set": "E: Clopper-Pearson sweep of the float path's edges", "cases": n_cases,
            "dps": SWEEP_DPS, "kinds": stats}


def plot(results: list[dict]):
    """Signed relative differences on a symmetric log axis; right of 0 = overstated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = 1e-18
    edges = np.logspace(-18, 0, 19)
    bins = np.concatenate([-edges[::-1], edges])
    fig, axes = plt.subplots(1, len(results), figsize=(11, 3.6))
    for ax, res in zip(np.atleast_1d(axes), results):
        for key, label, color in (("signed_naive_all", "naive float64", "tab:red"),
                                  ("signed_ours_all", "topk_bounds", "tab:blue")):
            vals = np.asarray(res[key], dtype=float)
            vals = vals[np.isfinite(vals)]
            vals = np.where(np.abs(vals) < floor, np.where(vals < 0, -floor, floor) * 1.01, vals)
            vals = np.clip(vals, -0.99, 0.99)
            ax.hist(vals, bins=bins, alpha=0.6, label=label, color=color)
        ax.set_xscale("symlog", linthresh=floor)
        ax.axvspan(floor, 1.0, color="tab:red", alpha=0.06)
        ax.set_xlim(-1, 1)
        ax.set_xticks([-1e-3, -1e-9, -1e-15, 0, 1e-15, 1e-9, 1e-3])
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlabel("(float - exact) / |exact|   (shaded: overstated)", fontsize=8)
        ax.set_title(f"{res['set']}\nnaive over: {res['naive_overstated']}, ours over: "
                     f"{res['ours_overstated']} of {res['cases']}", fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("inputs")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"float64 radii against the dps={DPS} path (|diff| < 1e-18 drawn at +-1e-18)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer inputs, under a minute")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    n_bounds, n_counts, n_cp, n_sweep = (150, 12, 20, 40) if args.quick else (3000, 150, 300, 1200)

    rng = np.random.default_rng(args.seed)
    results = [
        run_set("A: topk_radius, random bounds", n_bounds, rng, random_bounds, eval_bounds),
        run_set("B: certify, counts with n <= 1e12", n_counts, rng, random_counts, eval_counts),
        run_set("C: certify, other counts <= 40, n in 1e5..5e9", n_counts, rng,
                weak_spot_counts, eval_counts),
    ]
    cp = cp_weak_spot(n_cp, rng)
    sweep = cp_sweep(n_sweep, np.random.default_rng([args.seed, 5]))
    print(f"\n{'set':<48} {'inputs':>6} {'max rel (ours)':>15} {'ours > exact':>13} "
          f"{'max rel (naive)':>16} {'naive > exact':>14}")
    for r in results:
        print(f"{r['set']:<48} {r['cases']:>6} {r['max_rel_ours']:>15.2e} "
              f"{r['ours_overstated']:>13d} {r['max_rel_naive']:>16.2e} "
              f"{r['naive_overstated']:>14d}")
    print(f"{cp['set']}: {cp['cases']} bounds; scipy betainccinv max rel error "
          f"{cp['max_rel_scipy_betainccinv']:.2e} ({cp['scipy_below_exact']} below the exact "
          f"bound, i.e. unsafe); ours max rel excess {cp['max_rel_ours']:.2e} "
          f"({cp['ours_below_exact']} below)")
    print(f"{sweep['set']}: {sweep['cases']} (x, n, beta)")
    for kind, st in sweep["kinds"].items():
        print(f"  {kind:<10} max rel {st['max_rel']:.2e} (at {st['worst']}), unsafe {st['unsafe']}, "
              f"errors {st['errors']}; scipy max rel {st['scipy_max_rel']:.2e}, "
              f"unsafe {st['scipy_unsafe']}, nan {st['scipy_nan']}")

    info = machine_info()
    rows = [[r["set"], str(r["cases"]), f"{r['max_rel_ours']:.1e}", f"{r['median_rel_ours']:.1e}",
             str(r["ours_overstated"]), f"{r['max_rel_naive']:.1e}",
             f"**{r['naive_overstated']}**", f"{r['max_naive_overstatement_rel']:.1e}"]
            for r in results]
    md = (f"# Accuracy of the float64 path{' (quick)' if args.quick else ''}\n\n"
          f"{machine_line(info)} Reference: the dps={DPS} path; seed {args.seed}.\n\n"
          + markdown_table(["inputs", "count", "max rel diff (ours)", "median rel diff (ours)",
                            "ours > exact", "max rel diff (naive)", "naive > exact",
                            "largest naive overstatement (rel)"], rows, "lrrrrrrr")
          + "\nRelative difference: |float - exact| / |exact| over the inputs with a finite "
          "radius. *Naive*: plain scipy `ndtri`, `betaincinv`/`betainccinv` and `brentq` "
          "without directed rounding or margins.\n\n"
          f"{cp['set']} ({cp['cases']} random x, n and beta in 1e-7..1e-2): scipy's "
          f"`betainccinv` is off by up to **{cp['max_rel_scipy_betainccinv']:.1e}** relative "
          f"and below the exact bound (unsafe) in {cp['scipy_below_exact']} cases; "
          "`clopper_pearson_upper` exceeds the exact bound by at most "
          f"{cp['max_rel_ours']:.1e} relative and is below it in {cp['ours_below_exact']} "
          "cases.\n\n"
          f"{sweep['set']} ({sweep['cases']} random (x, n, beta), reference dps={sweep['dps']}; "
          "relative differences, beyond 1e-323 absolute for subnormal bounds):\n\n"
          + markdown_table(
              ["bound", "count", "max rel diff (ours)", "worst (x, n, beta)",
               "on the unsafe side (ours)", "ArithmeticError (ours)", "max rel diff (scipy inverse)",
               "unsafe (scipy)", "nan (scipy)"],
              [[kind, str(st["bounds"]), f"{st['max_rel']:.1e}", str(st["worst"]),
                f"**{st['unsafe']}**", str(st["errors"]), f"{st['scipy_max_rel']:.1e}",
                str(st["scipy_unsafe"]), str(st["scipy_nan"])] for kind, st in sweep["kinds"].items()],
              "lrrlrrrrr"))
    data = {"benchmark": "accuracy", "quick": args.quick, "seed": args.seed, "dps": DPS,
            "alpha": ALPHA, "machine": info, "sets": results, "clopper_pearson": cp,
            "clopper_pearson_sweep": sweep}
    paths = write_results("accuracy", args.quick, args.out, data, md, plot(results))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
