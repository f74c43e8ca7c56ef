"""How the time of :func:`topk_bounds.certify` grows with the inputs N and the labels c.

Two sweeps on realistic counts (:func:`bench_certify.realistic_counts`, n = 100,000,
k = 3, sigma = 0.5, alpha = 0.001, SimuEM):

- N = 100 .. 100,000 inputs at c = 10;
- c = 10 .. 10,000 labels at N = 1,000.

Each point is the fastest of several CPU-time measurements (``time.process_time``). A
straight line fitted to log(time) against log(size) gives the scaling exponent: 1 means
linear. Both the slope over all points and over the largest decade are reported: a fixed
cost per call flattens the small end, and in c only the memory passes over the (N, c)
counts grow (the bounds and radii are computed for the label and its k strongest
competitors only), so the slope in c stays below 1 until those passes dominate.

Usage::

    python benchmarks/bench_scaling.py            # about a minute on 2 shared cores
    python benchmarks/bench_scaling.py --quick    # seconds

Writes ``benchmarks/results/scaling.{json,md,png}`` (``scaling_quick.*`` with ``--quick``)
and, in full mode, copies the figure to ``docs/figures/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_certify import (ALPHA, N_SAMPLES, SIGMA, cpu_time, machine_info,  # noqa: E402
                           machine_line, markdown_table, realistic_counts, write_results)
from topk_bounds import certify  # noqa: E402

K = 3


def slope(sizes, times) -> float:
    """Least-squares slope of log(time) against log(size)."""
    return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


def sweep(points: list[tuple[int, int]], seed: int) -> list[dict]:
    rows = []
    for n_inputs, n_classes in points:
        rng = np.random.default_rng([seed, n_inputs, n_classes])
        counts, labels = realistic_counts(rng, n_inputs, n_classes)
        certify(counts[:5], labels[:5], k=K, sigma=SIGMA, alpha=ALPHA)  # warm-up
        repeats = 7 if n_inputs * n_classes <= 1e5 else 3
        t = cpu_time(lambda: certify(counts, labels, k=K, sigma=SIGMA, alpha=ALPHA), repeats)
        rows.append({"N": n_inputs, "c": n_classes, "seconds": t,
                     "us_per_input": 1e6 * t / n_inputs})
        print(f"  N={n_inputs:>7,} c={n_classes:>6,}: {t:8.4f} s "
              f"({1e6 * t / n_inputs:7.1f} us per input)", flush=True)
    return rows


def fits(rows: list[dict], key: str) -> dict:
    sizes = np.array([r[key] for r in rows], dtype=float)
    times = np.array([r["seconds"] for r in rows])
    top = sizes >= sizes.max() / 10
    return {"slope_all": slope(sizes, times), "slope_last_decade": slope(sizes[top], times[top])}


def plot(by_n: list[dict], by_c: list[dict], fit_n: dict, fit_c: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, rows, key, fit, fixed in ((axes[0], by_n, "N", fit_n, f"c = {by_n[0]['c']}"),
                                      (axes[1], by_c, "c", fit_c, f"N = {by_c[0]['N']:,}")):
        x = np.array([r[key] for r in rows], dtype=float)
        y = np.array([r["seconds"] for r in rows])
        ax.loglog(x, y, "o-", color="tab:blue", label="certify")
        ref = y[-1] * x / x[-1]
        ax.loglog(x, ref, "--", color="tab:gray", label="slope 1")
        ax.set_xlabel(f"{key} ({fixed}, k = {K})")
        ax.set_title(f"slope {fit['slope_all']:.2f} overall, "
                     f"{fit['slope_last_decade']:.2f} over the last decade", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("CPU seconds per call")
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sweeps, seconds")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    if args.quick:
        n_values, c_values = [100, 300, 1000, 3000, 10000], [10, 30, 100, 300, 1000]
    else:
        n_values = [100, 300, 1000, 3000, 10000, 30000, 100000]
        c_values = [10, 30, 100, 300, 1000, 3000, 10000]

    print("sweep over N:")
    by_n = sweep([(n, 10) for n in n_values], args.seed)
    print("sweep over c:")
    by_c = sweep([(1000, c) for c in c_values], args.seed)
    fit_n, fit_c = fits(by_n, "N"), fits(by_c, "c")
    print(f"\nslope in N: {fit_n['slope_all']:.3f} overall, {fit_n['slope_last_decade']:.3f} "
          f"over the last decade")
    print(f"slope in c: {fit_c['slope_all']:.3f} overall, {fit_c['slope_last_decade']:.3f} "
          f"over the last decade")

    info = machine_info()
    rows = [[f"{r['N']:,}", f"{r['c']:,}", f"{r['seconds']:.4f}", f"{r['us_per_input']:.1f}"]
            for r in by_n + by_c]
    md = (f"# certify scaling{' (quick)' if args.quick else ''}\n\n"
          f"{machine_line(info)} CPU time, fastest of 3-7 runs; n = {N_SAMPLES:,}, k = {K}, "
          f"sigma = {SIGMA}, alpha = {ALPHA}, SimuEM.\n\n"
          + markdown_table(["N", "c", "CPU s", "us per input"], rows, "rrrr")
          + f"\nLog-log slope in N (c = 10): **{fit_n['slope_all']:.2f}** over all points, "
          f"{fit_n['slope_last_decade']:.2f} over the last decade. "
          f"Slope in c (N = 1,000): **{fit_c['slope_all']:.2f}** over all points, "
          f"{fit_c['slope_last_decade']:.2f} over the last decade.\n")
    data = {"benchmark": "scaling", "quick": args.quick, "seed": args.seed, "k": K,
            "machine": info, "by_N": by_n, "by_c": by_c, "fit_N": fit_n, "fit_c": fit_c}
    paths = write_results("scaling", args.quick, args.out, data, md,
                          plot(by_n, by_c, fit_n, fit_c))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
