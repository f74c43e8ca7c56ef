"""Certify throughput of :func:`topk_bounds.certify` against the paper's per-example method.

The baseline (:mod:`_paper_baseline`) certifies one input at a time in a Python loop: a
scalar ``scipy.stats.beta.ppf`` Clopper-Pearson bound for every one of the c labels, then a
bisection to 1e-5 per t on Theorem 1's condition. :func:`topk_bounds.certify` handles all N
inputs at once, computes bounds only for the label and its k strongest competitors, and
rounds every step to the safe side.

Counts are ImageNet-shaped: n = 100,000 samples per input, label probabilities drawn from a
Dirichlet distribution (concentration 0.05) mixed with a dominant label of weight
U(0.2, 0.95); the label to certify is the dominant one for 70 % of the inputs and one of the
next four most likely labels otherwise (seeded). sigma = 0.5, alpha = 0.001, SimuEM.

Timing: CPU time of this process (``time.process_time``; both codes are single-threaded),
which other processes on a shared machine barely disturb. ``certify`` runs on all N inputs,
fastest of 5 runs; the baseline on the first ``m`` inputs, fastest of 3 runs, and its time
per input is extrapolated. Both sides are measured in the same run, so the ratio is
comparable even when absolute numbers are not.

Agreement, on the baseline's inputs: the largest |ours - baseline| among inputs both
certify, the largest (ours - baseline) (the baseline keeps the left end of its bisection,
so ours may exceed it by at most its 1e-5 tolerance), and how many inputs exactly one of
them certifies.

Against a plain scipy implementation: :func:`naive_certify` is what a user writes in an
afternoon, vectorized but with no soundness at all (``scipy.stats.beta.ppf`` / ``isf``
bounds at alpha / c for the label and its k largest competitors, a vectorized Newton on
log Phi for each t, radius = sigma * max_t s_t). Both run on the same counts at c = 1000,
k = 5, n = 100,000 (:func:`competitor_counts`: one dominant label, 2-8 competitors and a
thin tail), CPU time, fastest of several runs each, in one run of this script; the
largest |naive - certify| shows that they compute the same radii.

Usage::

    python benchmarks/bench_certify.py            # about a minute on 2 shared cores
    python benchmarks/bench_certify.py --quick    # seconds

Writes ``benchmarks/results/certify.{json,md,png}`` (``certify_quick.*`` with ``--quick``)
and, in full mode, copies the figure to ``docs/figures/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import scipy  # noqa: E402
from scipy import special, stats  # noqa: E402

from _paper_baseline import TOL, certify_loop  # noqa: E402
from topk_bounds import certify  # noqa: E402

SIGMA = 0.5
ALPHA = 0.001
N_SAMPLES = 100_000


# --------------------------------------------------------------------------------------
# helpers shared by the other benchmark scripts
# --------------------------------------------------------------------------------------
def realistic_counts(rng: np.random.Generator, n_inputs: int, n_classes: int,
                     n: int = N_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """Seeded counts of shape (N, c) with a dominant label, and the label to certify."""
    probs = rng.dirichlet(np.full(n_classes, 0.05), size=n_inputs)
    dominant = rng.integers(0, n_classes, size=n_inputs)
    weight = rng.uniform(0.2, 0.95, size=n_inputs)
    probs *= (1.0 - weight)[:, None]
    probs[np.arange(n_inputs), dominant] += weight
    probs /= probs.sum(axis=1, keepdims=True)
    counts = rng.multinomial(n, probs)
    order = np.argsort(-probs, axis=1)
    rank = np.where(rng.uniform(size=n_inputs) < 0.7, 0,
                    rng.integers(1, min(5, n_classes), size=n_inputs))
    labels = order[np.arange(n_inputs), rank]
    return counts.astype(np.int64), labels.astype(np.int64)


def competitor_counts(rng: np.random.Generator, n_inputs: int, n_classes: int,
                      n: int = N_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """Seeded counts with one dominant label, 2-8 competitors and a thin tail.

    The tail holds 2% of the mass spread evenly over all labels; 2-8 competitors (random
    labels) share 5-50% with Dirichlet(1) weights; the dominant label, which is the label
    to certify, holds the rest (at least 48%).
    """
    order = np.argsort(rng.random((n_inputs, n_classes)), axis=1)  # a random permutation per row
    labels = order[:, 0]
    n_comp = rng.integers(2, 9, size=n_inputs)
    weights = rng.dirichlet(np.ones(8), size=n_inputs)
    weights[np.arange(8)[None, :] >= n_comp[:, None]] = 0.0
    weights *= rng.uniform(0.05, 0.5, size=(n_inputs, 1)) / weights.sum(axis=1, keepdims=True)
    probs = np.full((n_inputs, n_classes), 0.02 / n_classes)
    rows = np.arange(n_inputs)
    probs[rows[:, None], order[:, 1:9]] += weights
    probs[rows, labels] += 1.0 - probs.sum(axis=1)
    return rng.multinomial(n, probs).astype(np.int64), labels.astype(np.int64)


def naive_certify(counts, labels, k: int, sigma: float, alpha: float,
                  tol: float = 1e-12, max_iter: int = 50) -> np.ndarray:
    """The radii as a plain vectorized scipy implementation computes them: no soundness.

    Float Clopper-Pearson bounds from ``scipy.stats.beta`` at alpha / c (SimuEM) for the
    label and its k largest competitors, Theorem 1's B_t, the closed form for t = 1 and a
    vectorized Newton on log Phi for t >= 2, started at (z_a - z_B) / 2 and iterated until
    every step is below ``tol``; nothing is rounded to the safe side or proven.
    """
    counts = np.asarray(counts)
    n_rows, n_classes = counts.shape
    rows = np.arange(n_rows)
    n = counts.sum(axis=1)
    level = alpha / n_classes
    n_l = counts[rows, labels]
    others = counts.copy()
    others[rows, labels] = -1
    top = -np.sort(-others, axis=1)[:, :k]  # the k largest other counts, descending
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(n_l > 0, stats.beta.ppf(level, n_l, n - n_l + 1), 0.0)
        b = np.where(top < n[:, None], stats.beta.isf(level, top + 1, n[:, None] - top), 1.0)
        b = np.minimum(b, (1.0 - a)[:, None])
        sums = np.minimum(np.cumsum(b[:, ::-1], axis=1), (1.0 - a)[:, None])  # B_1, ..., B_k
        za, zb = special.ndtri(a)[:, None], special.ndtri(sums)
        logt = np.log(np.arange(1, k + 1))[None, :]
        s = 0.5 * (za - zb)
        for _ in range(max_iter):
            x1, x2 = za - s, zb + s
            l1, l2 = special.log_ndtr(x1), special.log_ndtr(x2)
            slope = (np.exp(-0.5 * x1 * x1 - 0.5 * np.log(2 * np.pi) - l1)
                     + np.exp(-0.5 * x2 * x2 - 0.5 * np.log(2 * np.pi) - l2))
            step = (l1 - l2 + logt) / slope
            s = s + step
            if np.nanmax(np.abs(step)) < tol:
                break
        s[:, 0] = 0.5 * (za[:, 0] - zb[:, 0])
    return sigma * s.max(axis=1)


def machine_info() -> dict:
    """CPU model, core count and library versions, for the results files."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count()
    return {"cpu": cpu, "cores": cores, "gpu": "none", "python": platform.python_version(),
            "numpy": np.__version__, "scipy": scipy.__version__,
            "date": time.strftime("%Y-%m-%d")}


def machine_line(info: dict) -> str:
    return (f"{info['cpu']}, {info['cores']} cores (shared with other jobs), no GPU; "
            f"Python {info['python']}, numpy {info['numpy']}, scipy {info['scipy']}; "
            f"{info['date']}.")


def cpu_time(fn, repeats: int = 1) -> float:
    """The fastest of ``repeats`` CPU-time measurements of ``fn()``, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def write_results(name: str, quick: bool, out_dir: Path, data: dict, markdown: str,
                  fig) -> list[Path]:
    """Write ``name.{json,md,png}`` (``name_quick.*`` when quick); copy the PNG to docs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{name}_quick" if quick else name
    paths = [out_dir / f"{stem}.json", out_dir / f"{stem}.md", out_dir / f"{stem}.png"]
    paths[0].write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    paths[1].write_text(markdown, encoding="utf-8")
    fig.savefig(paths[2], dpi=120, bbox_inches="tight")
    if not quick:
        figures = ROOT / "docs" / "figures"
        figures.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths[2], figures / f"bench_{name}.png")
        paths.append(figures / f"bench_{name}.png")
    return paths


def markdown_table(header: list[str], rows: list[list[str]], align: str) -> str:
    """A Markdown table; ``align`` holds one of 'l' / 'r' per column."""
    marks = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------
def bench_case(n_classes: int, k: int, n_inputs: int, n_baseline: int, repeats: int,
               base_repeats: int, seed: int) -> dict:
    rng = np.random.default_rng([seed, n_classes])
    counts, labels = realistic_counts(rng, n_inputs, n_classes)
    certify(counts[:10], labels[:10], k=k, sigma=SIGMA, alpha=ALPHA)  # warm-up

    result = {}

    def ours():
        result["radius"] = certify(counts, labels, k=k, sigma=SIGMA, alpha=ALPHA).radius

    t_ours = cpu_time(ours, repeats)
    base = {}

    def baseline():
        base["radius"] = certify_loop(counts[:n_baseline], labels[:n_baseline], k, SIGMA, ALPHA)

    t_base = cpu_time(baseline, base_repeats)
    mine, theirs = result["radius"][:n_baseline], base["radius"]
    both = (mine > 0) & (theirs > 0)
    diff = mine[both] - theirs[both]
    return {
        "c": n_classes, "k": k, "n": N_SAMPLES, "inputs": n_inputs, "baseline_inputs": n_baseline,
        "ours_s_per_input": t_ours / n_inputs, "baseline_s_per_input": t_base / n_baseline,
        "ours_inputs_per_s": n_inputs / t_ours, "baseline_inputs_per_s": n_baseline / t_base,
        "ratio": (t_base / n_baseline) / (t_ours / n_inputs),
        "certified_fraction": float(np.mean(result["radius"] > 0)),
        "max_abs_diff": float(np.max(np.abs(diff))) if diff.size else 0.0,
        "max_ours_minus_baseline": float(np.max(diff)) if diff.size else 0.0,
        "certified_disagreements": int(np.sum((mine > 0) != (theirs > 0))),
    }


def bench_naive(n_inputs: int, repeats: int, seed: int, n_classes: int = 1000, k: int = 5) -> dict:
    """certify against :func:`naive_certify` on :func:`competitor_counts`, one run."""
    counts, labels = competitor_counts(np.random.default_rng([seed, n_classes, k]), n_inputs, n_classes)
    certify(counts[:10], labels[:10], k=k, sigma=SIGMA, alpha=ALPHA)  # warm-up
    naive_certify(counts[:10], labels[:10], k, SIGMA, ALPHA)
    out = {}
    t_ours = cpu_time(lambda: out.__setitem__("ours", certify(counts, labels, k=k, sigma=SIGMA,
                                                              alpha=ALPHA).radius), repeats)
    t_naive = cpu_time(lambda: out.__setitem__("naive", naive_certify(counts, labels, k, SIGMA,
                                                                      ALPHA)), repeats)
    ours, naive = out["ours"], out["naive"]
    both = np.isfinite(ours) & np.isfinite(naive)
    diff = naive[both] - ours[both]
    return {
        "c": n_classes, "k": k, "n": N_SAMPLES, "inputs": n_inputs,
        "ours_us_per_input": 1e6 * t_ours / n_inputs, "naive_us_per_input": 1e6 * t_naive / n_inputs,
        "time_ratio": t_ours / t_naive,
        "max_abs_diff": float(np.max(np.abs(diff))) if diff.size else 0.0,
        "naive_above_ours": int(np.sum(diff > 0)),
        "certified_fraction": float(np.mean(ours > 0)),
        "nonfinite_disagreements": int(np.sum(np.isfinite(ours) != np.isfinite(naive))),
    }


def plot(cases: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    names = [f"c={r['c']}\nk={r['k']}" for r in cases]
    x = np.arange(len(cases))
    ax.bar(x - 0.2, [r["baseline_inputs_per_s"] for r in cases], 0.4,
           label="paper's per-example method", color="tab:gray")
    ax.bar(x + 0.2, [r["ours_inputs_per_s"] for r in cases], 0.4,
           label="topk_bounds.certify", color="tab:blue")
    for xi, r in zip(x, cases):
        ax.text(xi + 0.2, r["ours_inputs_per_s"] * 1.15, f"{r['ratio']:.0f}x",
                ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(x, names)
    ax.set_ylabel("inputs certified per CPU second")
    ax.set_title(f"certify throughput, n = {N_SAMPLES:,}, sigma = {SIGMA}, alpha = {ALPHA}")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_ylim(top=ax.get_ylim()[1] * 4)
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)

    if args.quick:
        sizes = {10: (2000, 40), 1000: (300, 3)}
        repeats, base_repeats = 2, 1
    else:
        sizes = {10: (20000, 400), 1000: (4000, 30)}
        repeats, base_repeats = 5, 3
    cases = []
    print(f"{'c':>5} {'k':>2} {'ours in/s':>11} {'paper in/s':>11} {'ratio':>7} "
          f"{'max|diff|':>10} {'max(ours-paper)':>16} {'cert. disagree':>15}")
    for n_classes, (n_inputs, n_baseline) in sizes.items():
        for k in (1, 3, 5):
            r = bench_case(n_classes, k, n_inputs, n_baseline, repeats, base_repeats, args.seed)
            cases.append(r)
            print(f"{r['c']:>5} {r['k']:>2} {r['ours_inputs_per_s']:>11.0f} "
                  f"{r['baseline_inputs_per_s']:>11.2f} {r['ratio']:>6.0f}x "
                  f"{r['max_abs_diff']:>10.2e} {r['max_ours_minus_baseline']:>16.2e} "
                  f"{r['certified_disagreements']:>15d}", flush=True)

    naive_sizes = [500, 2000] if args.quick else [1000, 4000, 20000]
    print("\nagainst a plain scipy implementation (c = 1000, k = 5):")
    naive_cases = []
    for n_inputs in naive_sizes:
        nv = bench_naive(n_inputs, repeats, args.seed)
        naive_cases.append(nv)
        print(f"  {nv['inputs']:>6,} inputs: certify {nv['ours_us_per_input']:5.1f} us per input, "
              f"naive {nv['naive_us_per_input']:5.1f} us: ratio {nv['time_ratio']:.2f}; "
              f"max |diff| {nv['max_abs_diff']:.1e}", flush=True)
        if nv["max_abs_diff"] > 1e-6 or nv["nonfinite_disagreements"]:
            print("warning: the naive radii differ from certify's by more than 1e-6", flush=True)

    info = machine_info()
    rows = [[str(r["c"]), str(r["k"]), f"{r['inputs']:,}", f"{r['ours_inputs_per_s']:,.0f}",
             f"{r['baseline_inputs']}", f"{r['baseline_inputs_per_s']:,.2f}",
             f"**{r['ratio']:,.0f}x**", f"{r['max_abs_diff']:.1e}",
             f"{r['max_ours_minus_baseline']:.1e}", str(r["certified_disagreements"])]
            for r in cases]
    md = (f"# certify throughput{' (quick)' if args.quick else ''}\n\n"
          f"{machine_line(info)} CPU time (`time.process_time`), n = {N_SAMPLES:,} samples "
          f"per input, sigma = {SIGMA}, alpha = {ALPHA}, SimuEM; ours: fastest of {repeats} "
          f"runs on all inputs; paper's method: fastest of {base_repeats} run(s) on the first "
          "inputs, extrapolated per input.\n\n"
          + markdown_table(["c", "k", "inputs", "ours (inputs/s)", "paper's inputs timed",
                            "paper's (inputs/s)", "speed-up", "max abs diff",
                            "max (ours - paper)", "certified disagreements"], rows,
                           "rrrrrrrrrr")
          + f"\nThe baseline bisects to {TOL:g} and keeps the left end, so ours may exceed "
          "it by up to that tolerance.\n"
          + "\n## Against a plain vectorized scipy implementation\n\n"
          "`naive_certify` (scipy.stats.beta bounds, vectorized Newton on log Phi, no "
          f"soundness) and `certify` on the same inputs at c = 1000, k = 5, n = {N_SAMPLES:,} "
          "(one dominant label, 2-8 competitors, a thin tail); CPU time, fastest of "
          f"{repeats} runs each, all measured in one run.\n\n"
          + markdown_table(["c", "k", "inputs", "certify (us/input)", "naive (us/input)",
                            "certify / naive", "max abs diff", "naive above certify"],
                           [[str(nv["c"]), str(nv["k"]), f"{nv['inputs']:,}",
                             f"{nv['ours_us_per_input']:.1f}", f"{nv['naive_us_per_input']:.1f}",
                             f"**{nv['time_ratio']:.2f}x**", f"{nv['max_abs_diff']:.1e}",
                             f"{nv['naive_above_ours']:,}"] for nv in naive_cases], "rrrrrrrr")
          + "\nThe naive radii are neither rounded to the safe side nor proven: they exceed "
          "certify's in the inputs of the last column, by at most the max abs diff, which is "
          "also how closely the two agree. certify's verified Clopper-Pearson bounds cost "
          "two evaluations of `betainc` per distinct count, for both the bound and its "
          "complement (`topk_bounds._cp_pair`); the naive code calls scipy's inverse "
          "(`beta.ppf` / `isf`, several such evaluations each) once per count. Counts "
          "repeat more in larger batches, so the ratio falls as the batch grows.\n")
    data = {"benchmark": "certify", "quick": args.quick, "seed": args.seed, "machine": info,
            "sigma": SIGMA, "alpha": ALPHA, "repeats": repeats, "baseline_repeats": base_repeats,
            "cases": cases, "naive": naive_cases}
    paths = write_results("certify", args.quick, args.out, data, md, plot(cases))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
