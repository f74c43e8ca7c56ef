"""Cost of the arbitrary-precision path per input, against the float64 codes.

For ImageNet-shaped inputs (n = 100,000, realistic counts from :mod:`bench_certify`,
k = 3, sigma = 0.5, alpha = 0.001, SimuEM) one certificate is computed entirely with mpmath
at dps = 30, 50 and 100 digits: the exact Clopper-Pearson bounds of the label and of its k
strongest competitors (``clopper_pearson_lower_complement`` / ``clopper_pearson_upper`` with
``dps``; the others cannot change the radius), then Theorem 1's radius with
:func:`topk_bounds.radius.mp_radius`. The time is split into bounds and radius. The first
call at each precision also computes mpmath's quadrature nodes (a one-time cost reported
separately); the table reports the mean over the following inputs.

For comparison, in the same run: the paper's per-example float code (:mod:`_paper_baseline`,
which computes a scipy bound for every one of the c labels) and :func:`topk_bounds.certify`
(float64, vectorized; time per input over a batch), for c = 10 and c = 1000.

Timing: CPU time of this process (``time.process_time``). mpmath runs on its pure-Python
backend unless gmpy2 is installed (the backend is recorded).

Usage::

    python benchmarks/bench_dps.py            # a few minutes on 2 shared cores
    python benchmarks/bench_dps.py --quick    # about a minute

Writes ``benchmarks/results/dps.{json,md,png}`` (``dps_quick.*`` with ``--quick``) and, in
full mode, copies the figure to ``docs/figures/``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import mpmath
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _paper_baseline import certify_loop  # noqa: E402
from bench_certify import (ALPHA, N_SAMPLES, SIGMA, cpu_time, machine_info,  # noqa: E402
                           machine_line, markdown_table, realistic_counts, write_results)
from topk_bounds import (certify, clopper_pearson_lower_complement,  # noqa: E402
                         clopper_pearson_upper)
from topk_bounds.radius import mp_radius  # noqa: E402

K = 3
DPS_LIST = (30, 50, 100)


def mp_certify_one(counts: np.ndarray, label: int, k: int, sigma: float, alpha: float,
                   dps: int) -> tuple[object, float, float]:
    """One input's radius at ``dps`` digits; returns (radius, bounds CPU s, radius CPU s)."""
    n = int(counts.sum())
    t0 = time.process_time()
    with mpmath.workdps(dps):
        beta = mpmath.mpf(alpha) / counts.size
        qa = clopper_pearson_lower_complement(int(counts[label]), n, beta, dps=dps)
        others = sorted((int(x) for j, x in enumerate(counts) if j != label), reverse=True)
        b = [clopper_pearson_upper(x, n, beta, dps=dps) for x in others[:k]]
        a = 1 - qa
    t1 = time.process_time()
    radius = mp_radius(a, b, k, sigma, dps, p_lower_complement=qa)
    t2 = time.process_time()
    return radius, t1 - t0, t2 - t1


def plot(rows: list[dict], floats: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    labels, values, colors = [], [], []
    for f in floats:
        labels += [f"certify\nc={f['c']}", f"paper float\nc={f['c']}"]
        values += [f["ours_s_per_input"], f["baseline_s_per_input"]]
        colors += ["tab:blue", "tab:gray"]
    for r in rows:
        labels.append(f"mpmath\ndps={r['dps']}")
        values.append(r["mean_s_per_input"])
        colors.append("tab:orange")
    x = np.arange(len(values))
    ax.bar(x, values, color=colors)
    for xi, v in zip(x, values):
        ax.text(xi, v * 1.2, f"{v:.2g} s", ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("CPU seconds per input")
    ax.set_ylim(top=max(values) * 8)
    ax.set_title(f"one certificate, n = {N_SAMPLES:,}, k = {K} (mpmath: c-independent)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer inputs, about a minute")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    n_mp, n_base, n_ours = (2, (20, 2), 2000) if args.quick else (6, (200, 10), 20000)

    floats = []
    for n_classes, m_base in zip((10, 1000), n_base):
        rng = np.random.default_rng([args.seed, n_classes])
        counts, labels = realistic_counts(rng, max(n_ours // (1 + n_classes // 100), m_base),
                                          n_classes)
        t_ours = cpu_time(lambda: certify(counts, labels, k=K, sigma=SIGMA, alpha=ALPHA), 3)
        t_base = cpu_time(lambda: certify_loop(counts[:m_base], labels[:m_base], K, SIGMA,
                                               ALPHA))
        floats.append({"c": n_classes, "ours_s_per_input": t_ours / len(labels),
                       "baseline_s_per_input": t_base / m_base, "baseline_inputs": m_base})

    rng = np.random.default_rng([args.seed, 1000])
    counts, labels = realistic_counts(rng, n_mp + 1, 1000)
    rows = []
    for dps in DPS_LIST:
        t0 = time.process_time()
        mp_certify_one(counts[0], int(labels[0]), K, SIGMA, ALPHA, dps)
        first = time.process_time() - t0
        bounds_t, radius_t = [], []
        for i in range(1, n_mp + 1):
            _, tb, tr = mp_certify_one(counts[i], int(labels[i]), K, SIGMA, ALPHA, dps)
            bounds_t.append(tb)
            radius_t.append(tr)
        total = np.add(bounds_t, radius_t)
        rows.append({"dps": dps, "inputs": n_mp, "first_call_s": first,
                     "mean_bounds_s": float(np.mean(bounds_t)),
                     "mean_radius_s": float(np.mean(radius_t)),
                     "mean_s_per_input": float(np.mean(total)),
                     "max_s_per_input": float(np.max(total))})
        print(f"dps={dps}: {rows[-1]['mean_s_per_input']:.3f} s per input "
              f"(bounds {rows[-1]['mean_bounds_s']:.3f}, radius {rows[-1]['mean_radius_s']:.3f}; "
              f"first call {first:.2f} s)", flush=True)

    print(f"\n{'method':<28} {'s per input':>12} {'x paper c=10':>13} {'x paper c=1000':>15}")
    b10, b1000 = floats[0]["baseline_s_per_input"], floats[1]["baseline_s_per_input"]
    table = []
    for f in floats:
        table.append((f"certify (float64), c={f['c']}", f["ours_s_per_input"]))
        table.append((f"paper's float code, c={f['c']}", f["baseline_s_per_input"]))
    for r in rows:
        table.append((f"mpmath dps={r['dps']} (any c)", r["mean_s_per_input"]))
    for name, t in table:
        print(f"{name:<28} {t:>12.3g} {t / b10:>13.3g} {t / b1000:>15.3g}")

    info = machine_info()
    info["mpmath"] = mpmath.__version__
    info["mpmath_backend"] = mpmath.libmp.BACKEND
    md_rows = [[name, f"{t:.3g}", f"{t / b10:.3g}", f"{t / b1000:.3g}"] for name, t in table]
    dps_rows = [[str(r["dps"]), f"{r['mean_bounds_s']:.3f}", f"{r['mean_radius_s']:.3f}",
                 f"{r['mean_s_per_input']:.3f}", f"{r['max_s_per_input']:.3f}",
                 f"{r['first_call_s']:.2f}"] for r in rows]
    md = (f"# Cost of the dps path{' (quick)' if args.quick else ''}\n\n"
          f"{machine_line(info)} mpmath {mpmath.__version__} ({mpmath.libmp.BACKEND} backend). "
          f"CPU time; n = {N_SAMPLES:,}, k = {K}, sigma = {SIGMA}, alpha = {ALPHA}, SimuEM.\n\n"
          + markdown_table(["method", "CPU s per input", "relative to paper's code, c=10",
                            "relative to paper's code, c=1000"], md_rows, "lrrr")
          + f"\nThe mpmath rows, mean over {n_mp} inputs after a first call at each precision:\n\n"
          + markdown_table(["dps", "bounds (s)", "radius (s)", "total (s)", "slowest (s)",
                            "first call (s)"], dps_rows, "rrrrrr"))
    data = {"benchmark": "dps", "quick": args.quick, "seed": args.seed, "k": K,
            "sigma": SIGMA, "alpha": ALPHA, "machine": info, "float": floats, "dps": rows}
    paths = write_results("dps", args.quick, args.out, data, md, plot(rows, floats))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
