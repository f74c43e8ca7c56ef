"""Samples saved by :func:`topk_bounds.adaptive.certify_adaptive`, and what it costs in accuracy.

A simulation with known label probabilities, so that "fresh noisy predictions" are fresh
multinomial draws (numpy, seeded):

A. CIFAR-10: the 500 rows of ``../shared/data/cifar10_sigma0.25_counts.txt`` (Jia et al.'s
   published counts, n = 100,000) taken as the true probabilities, p = counts / 100,000,
   with the file's true labels. sigma = 0.25, alpha = 0.001, max_n = 100,000,
   target radius r in {0.25, 0.5}, k in {1, 3}.
B. ImageNet-shaped: c = 1000, probabilities Dirichlet(0.05) mixed with a dominant label of
   weight U(0.2, 0.95); the label to certify is the dominant one for 70 % of the inputs
   and one of the next four most likely otherwise (the recipe of ``bench_certify.py``).
   sigma = 0.5, alpha = 0.001, max_n = 100,000, r = 0.5, k in {1, 5}.

For every setting and replicate (a fresh seed), the adaptive procedure runs with its
defaults (``method="ranked"``) and, on independent fresh counts, the fixed-n protocol of
the paper: n = 100,000 samples per input and ``certify(..., method="simuem")``. Reported:
mean samples per input (and the saving 100,000 / mean), the share of inputs that used
the full budget, certified accuracy at r of both (the share of inputs certified at r),
and their difference, averaged over the replicates. A sensitivity table varies one
parameter of the adaptive procedure at a time (the first look, the growth of the
schedule, the share of alpha on the final look, the futility level) on the same
settings, one replicate each.

C. ``--sampler``: the real sampler on the digits demo model (needs torch and
   scikit-learn). :class:`sampler.models.DigitsCNN` is trained once with the demo's recipe
   (``sampler.demo``, seeded), then the first ``num_test`` test images are certified at
   sigma = 0.5, alpha = 0.001, r in {0.25, 0.5}, k in {1, 3}, max_n = 20,000, twice:
   adaptively (:func:`sampler.sample_adaptive`, its defaults) and with the fixed protocol
   (:func:`sampler.sample_counts` with n = max_n for every image, certified with SimuEM and
   with the ranked bounds at the full alpha). Reported: the wall time of each (the fixed
   counts are sampled once and serve all four settings; each setting's fixed time is that
   sampling plus its certification), the forward passes, and certified accuracy at r.
   Both use the same noise streams, so the adaptive samples of an image are a prefix of
   its fixed ones: the script checks that the counts of every image that drew max_n
   samples equal its fixed counts.

Usage::

    python benchmarks/bench_adaptive.py            # several minutes on 2 shared cores
    python benchmarks/bench_adaptive.py --quick    # a smoke run of well under a minute
    python benchmarks/bench_adaptive.py --sampler [--quick]   # C: 3 to 5 minutes

Writes ``benchmarks/results/adaptive.{json,md,png}`` (``adaptive_quick.*`` with
``--quick``; ``adaptive_sampler[_quick].*`` with ``--sampler``) and, in full mode, copies
the figure to ``docs/figures/``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from bench_certify import machine_info, machine_line, markdown_table, write_results  # noqa: E402
from topk_bounds import certify, topk_radius  # noqa: E402
from topk_bounds import adaptive  # noqa: E402

ALPHA = 0.001
MAX_N = 100_000
CIFAR_FILE = ROOT.parent / "shared" / "data" / "cifar10_sigma0.25_counts.txt"

#: (name, set, sigma, r, k)
SETTINGS = [
    ("cifar10 k=1 r=0.25", "cifar", 0.25, 0.25, 1),
    ("cifar10 k=1 r=0.5", "cifar", 0.25, 0.5, 1),
    ("cifar10 k=3 r=0.25", "cifar", 0.25, 0.25, 3),
    ("cifar10 k=3 r=0.5", "cifar", 0.25, 0.5, 3),
    ("imagenet-like k=1 r=0.5", "imagenet", 0.5, 0.5, 1),
    ("imagenet-like k=5 r=0.5", "imagenet", 0.5, 0.5, 5),
]
#: beyond the issue's cases (no target): other radii and k, to show where savings shrink
EXTRA_SETTINGS = [
    ("cifar10 k=1 r=0.125", "cifar", 0.25, 0.125, 1),
    ("cifar10 k=1 r=0.75", "cifar", 0.25, 0.75, 1),
    ("cifar10 k=2 r=0.5", "cifar", 0.25, 0.5, 2),
    ("imagenet-like k=1 r=0.25", "imagenet", 0.5, 0.25, 1),
    ("imagenet-like k=1 r=1.0", "imagenet", 0.5, 1.0, 1),
    ("imagenet-like k=3 r=0.5", "imagenet", 0.5, 0.5, 3),
]
#: the issue's targets: saving at least (and aimed at), accuracy at most 1 point lower
TARGETS = {name: ((20.0, 50.0) if kind == "cifar" else (12.0, 25.0))
           for name, kind, *_ in SETTINGS}
MAX_ACCURACY_LOSS = 0.01

DEFAULTS = dict(first_n=adaptive.FIRST_N, growth=adaptive.GROWTH,
                final_share=adaptive.FINAL_SHARE, futility=adaptive.FUTILITY)
#: one parameter at a time, the others at their defaults
SENSITIVITY = [("defaults", None), ("first_n", 256), ("first_n", 512), ("growth", 1.25), ("growth", 2.0),
               ("final_share", 0.25), ("final_share", 0.75), ("futility", 0.01),
               ("futility", 0.1), ("futility", 0.2), ("futility", None), ("method", "simuem")]


# --------------------------------------------------------------------------------------
# the true probabilities
# --------------------------------------------------------------------------------------
def cifar_probabilities(n_inputs: int | None) -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(CIFAR_FILE, dtype=np.int64)
    counts, labels = data[:, :-1], data[:, -1]
    if n_inputs is not None:
        counts, labels = counts[:n_inputs], labels[:n_inputs]
    return counts / counts.sum(axis=1, keepdims=True), labels


def imagenet_probabilities(rng: np.random.Generator, n_inputs: int,
                           n_classes: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    probs = rng.dirichlet(np.full(n_classes, 0.05), size=n_inputs)
    dominant = rng.integers(0, n_classes, size=n_inputs)
    weight = rng.uniform(0.2, 0.95, size=n_inputs)
    probs *= (1.0 - weight)[:, None]
    probs[np.arange(n_inputs), dominant] += weight
    probs /= probs.sum(axis=1, keepdims=True)
    order = np.argsort(-probs, axis=1)
    rank = np.where(rng.uniform(size=n_inputs) < 0.7, 0, rng.integers(1, 5, size=n_inputs))
    return probs, order[np.arange(n_inputs), rank].astype(np.int64)


def multinomial_draw(probs: np.ndarray, rng: np.random.Generator):
    """``draw(rows, m)`` for known probabilities: fresh multinomial counts."""

    def draw(rows, m):
        return rng.multinomial(m, probs[rows])

    return draw


# --------------------------------------------------------------------------------------
# one setting
# --------------------------------------------------------------------------------------
def run_setting(probs, labels, sigma, r, k, rng, params) -> dict:
    start = time.process_time()
    res = adaptive.certify_adaptive(multinomial_draw(probs, rng), labels, k=k, sigma=sigma,
                                    alpha=ALPHA, radius=r, max_n=MAX_N, **params)
    seconds = time.process_time() - start
    return {"mean_n": float(res.n.mean()), "accuracy": float(res.certified.mean()), "n": res.n,
            "certified": res.certified,
            "decisions": {d: int(np.sum(res.decision == d)) for d in
                          (adaptive.CERTIFIED, adaptive.FUTILE, adaptive.EXHAUSTED)},
            "cpu_seconds": seconds, "looks": int(res.schedule.size)}


def fixed_accuracy(probs, labels, sigma, r, k, rng) -> float:
    counts = rng.multinomial(MAX_N, probs)
    return float(np.mean(certify(counts, labels, k=k, sigma=sigma, alpha=ALPHA,
                                 method="simuem").radius >= r))


def true_radii(probs: np.ndarray, labels: np.ndarray, k: int, sigma: float) -> np.ndarray:
    """Theorem 1's radius of the exact probabilities of every input."""
    return np.array([topk_radius(p[l], np.delete(p, l), k, sigma) for p, l in zip(probs, labels)])


#: buckets of (true radius - r) for the breakdown of where the samples go
GAPS = [-np.inf, -0.1, -0.03, 0.0, 0.03, 0.1, np.inf]


def breakdown(gap: np.ndarray, n: np.ndarray, certified: np.ndarray) -> list[dict]:
    rows = []
    for lo, hi in zip(GAPS[:-1], GAPS[1:]):
        m = (gap >= lo) & ((gap < hi) | (hi == np.inf))
        rows.append({"gap": [lo, hi], "share_of_inputs": float(m.mean()),
                     "mean_n": float(n[m].mean()) if m.any() else None,
                     "share_of_samples": float(n[m].sum() / n.sum()),
                     "certified": float(certified[m].mean()) if m.any() else None})
    return rows


def evaluate(index: int, setting, params: dict, replicates: int, seed: int,
             n_cifar: int | None, n_imagenet: int) -> dict:
    """The adaptive procedure with ``params`` and the fixed-n protocol, on ``replicates``
    fresh seeds (replicate ``rep`` uses the same probabilities and draws for every
    ``params``, so parameter changes are compared on the same random numbers)."""
    name, kind, sigma, r, k = setting
    per_rep = []
    for rep in range(replicates):
        rng = np.random.default_rng([seed, index, rep])
        if kind == "cifar":
            probs, labels = cifar_probabilities(n_cifar)
        else:
            probs, labels = imagenet_probabilities(np.random.default_rng([seed, 1000, rep]), n_imagenet)
        fixed = fixed_accuracy(probs, labels, sigma, r, k, np.random.default_rng([seed, index, rep, 1]))
        per_rep.append({"adaptive": run_setting(probs, labels, sigma, r, k, rng, params),
                        "fixed_accuracy": fixed, "gap": true_radii(probs, labels, k, sigma) - r})
    n_all = np.concatenate([p["adaptive"]["n"] for p in per_rep])
    mean_n = float(n_all.mean())
    acc = float(np.mean([p["adaptive"]["accuracy"] for p in per_rep]))
    fixed = float(np.mean([p["fixed_accuracy"] for p in per_rep]))
    need, aim = TARGETS.get(name, (None, None))
    return {
        "name": name, "set": kind, "sigma": sigma, "r": r, "k": k,
        "inputs": int(labels.size), "replicates": replicates,
        "mean_n": mean_n, "saving": MAX_N / mean_n, "median_n": float(np.median(n_all)),
        "full_budget": float(np.mean(n_all == MAX_N)),
        "adaptive_accuracy": acc, "fixed_accuracy": fixed, "accuracy_change": acc - fixed,
        "saving_range": [min(MAX_N / p["adaptive"]["mean_n"] for p in per_rep),
                         max(MAX_N / p["adaptive"]["mean_n"] for p in per_rep)],
        "change_range": [min(p["adaptive"]["accuracy"] - p["fixed_accuracy"] for p in per_rep),
                         max(p["adaptive"]["accuracy"] - p["fixed_accuracy"] for p in per_rep)],
        "decisions": {d: int(sum(p["adaptive"]["decisions"][d] for p in per_rep))
                      for d in per_rep[0]["adaptive"]["decisions"]},
        "looks": per_rep[0]["adaptive"]["looks"],
        "cpu_seconds": float(sum(p["adaptive"]["cpu_seconds"] for p in per_rep)),
        "target_saving": need, "aim_saving": aim,
        "meets_target": None if need is None else bool(MAX_N / mean_n >= need
                                                       and acc - fixed >= -MAX_ACCURACY_LOSS),
        "breakdown": breakdown(np.concatenate([p["gap"] for p in per_rep]), n_all,
                               np.concatenate([p["adaptive"]["certified"] for p in per_rep])),
        "_n": n_all,
    }


def _line(case: dict) -> str:
    return (f"{case['name']:26s} saving {case['saving']:6.1f}x  accuracy {case['adaptive_accuracy']:.4f} "
            f"vs fixed {case['fixed_accuracy']:.4f} ({100 * case['accuracy_change']:+.2f} points)  "
            f"full budget {case['full_budget']:.3f}")


def bench(seed: int, replicates: int, n_imagenet: int, n_cifar: int | None,
          sensitivity_replicates: int, extras: bool) -> dict:
    data = dict(seed=seed, n_cifar=n_cifar, n_imagenet=n_imagenet)
    cases = []
    for index, setting in enumerate(SETTINGS):
        cases.append(evaluate(index, setting, DEFAULTS, replicates, **data))
        print(_line(cases[-1]), flush=True)
    extra = []
    if extras:
        for index, setting in enumerate(EXTRA_SETTINGS, start=len(SETTINGS)):
            extra.append(evaluate(index, setting, DEFAULTS, replicates, **data))
            print("(extra) " + _line(extra[-1]), flush=True)
    sens = []
    if sensitivity_replicates:
        for pname, value in SENSITIVITY:
            params = dict(DEFAULTS) if pname == "defaults" else dict(DEFAULTS, **{pname: value})
            row = {"parameter": pname, "value": value, "settings": []}
            for index, setting in enumerate(SETTINGS):
                case = evaluate(index, setting, params, sensitivity_replicates, **data)
                row["settings"].append({"name": case["name"], "saving": case["saving"],
                                        "accuracy_change": case["accuracy_change"]})
            sens.append(row)
            print(f"{pname}={value!s:6s} " + "  ".join(
                f"{s['saving']:5.1f}x {100 * s['accuracy_change']:+.2f}" for s in row["settings"]),
                flush=True)
    return {"cases": cases, "extra": extra, "sensitivity": sens}


# --------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------
def plot(cases: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.4))
    for case in cases:  # n takes only the schedule's values: a histogram over the looks
        values, counts = np.unique(case["_n"], return_counts=True)
        ax1.plot(values, counts / case["_n"].size, marker="o", markersize=3, linewidth=1.2,
                 label=f"{case['name']} (mean {case['mean_n']:,.0f})")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("samples drawn per input (the look at which it stopped)")
    ax1.set_ylabel("share of inputs")
    ax1.set_title(f"Samples used by certify_adaptive (max_n = {MAX_N:,})")
    ax1.legend(fontsize=7)
    x = np.arange(len(cases))
    ax2.bar(x - 0.2, [100 * c["fixed_accuracy"] for c in cases], 0.4,
            label="fixed n = 100,000, SimuEM")
    ax2.bar(x + 0.2, [100 * c["adaptive_accuracy"] for c in cases], 0.4, label="adaptive, ranked")
    for xi, c in zip(x, cases):
        ax2.text(xi + 0.2, 100 * c["adaptive_accuracy"] + 1, f"{c['saving']:.0f}x",
                 ha="center", fontsize=8)
    ax2.set_xticks(x)
    ax2.set_xticklabels([c["name"].replace(" k", "\nk") for c in cases], fontsize=7)
    ax2.set_ylabel("certified accuracy at r (%)")
    ax2.set_ylim(0, 105)
    ax2.set_title("Certified accuracy (label over the bar: sample saving)")
    ax2.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def _case_rows(cases: list[dict]) -> list[list[str]]:
    rows = []
    for c in cases:
        if c["target_saving"] is None:
            verdict = "(no target)"
        else:
            verdict = (f">= {c['target_saving']:.0f}x and >= -1 point: "
                       + ("met" if c["meets_target"] else "NOT met"))
        rows.append([c["name"], str(c["inputs"]), str(c["replicates"]), f"{c['mean_n']:,.0f}",
                     f"{c['median_n']:,.0f}", f"{c['saving']:.1f}x",
                     f"{c['saving_range'][0]:.0f}-{c['saving_range'][1]:.0f}x",
                     f"{100 * c['full_budget']:.1f}", f"{100 * c['fixed_accuracy']:.1f}",
                     f"{100 * c['adaptive_accuracy']:.1f}", f"{100 * c['accuracy_change']:+.2f}",
                     verdict])
    return rows


HEADER = ["setting", "inputs", "reps", "mean n", "median n", "saving", "per rep",
          "full budget (%)", "fixed-n acc. (%)", "adaptive acc. (%)", "change (points)", "target"]


def markdown(result: dict, info: dict, args, config: dict) -> str:
    text = [f"# certify_adaptive against the fixed n = {MAX_N:,} protocol"
            + (" (quick run)" if args.quick else ""), "",
            f"Machine: {machine_line(info)} Seed {args.seed}.", "",
            "Adaptive defaults: " + ", ".join(f"{k} = {v}" for k, v in DEFAULTS.items())
            + f", method = 'ranked', multiple_of = {adaptive.BLOCK}; alpha = {ALPHA}, "
            f"max_n = {MAX_N:,}. Fixed n: {MAX_N:,} fresh samples per input, SimuEM. "
            "Saving = 100,000 / mean samples per input over all replicates; accuracies are "
            "the mean over replicates of the share of inputs certified at r.", "",
            markdown_table(HEADER, _case_rows(result["cases"]), "lrrrrrrrrrrl")]
    labels = [f"[{lo:+g}, {hi:+g}" + ("]" if hi == np.inf else ")") for lo, hi in zip(GAPS[:-1], GAPS[1:])]
    brows = []
    for c in result["cases"]:
        brows.append([c["name"]] + [
            "-" if b["mean_n"] is None else
            f"{100 * b['share_of_inputs']:.1f} % / {b['mean_n']:,.0f} / {100 * b['share_of_samples']:.0f} %"
            for b in c["breakdown"]])
    text += ["", "Where the samples go, by the gap between the true radius (Theorem 1 of the exact "
             "probabilities) and r: share of inputs / their mean n / their share of all samples:", "",
             markdown_table(["setting"] + labels, brows, "l" + "r" * len(labels))]
    if result["extra"]:
        text += ["", "Beyond the issue's cases (defaults unchanged, no target):", "",
                 markdown_table(HEADER, _case_rows(result["extra"]), "lrrrrrrrrrrl")]
    if result["sensitivity"]:
        header = ["change"] + [c["name"] for c in result["cases"]]
        srows = []
        for row in result["sensitivity"]:
            label = "defaults" if row["parameter"] == "defaults" else f"{row['parameter']} = {row['value']}"
            srows.append([label] + [
                f"{s['saving']:.1f}x, {100 * s['accuracy_change']:+.2f}" for s in row["settings"]])
        text += ["", f"Sensitivity ({config['sensitivity_replicates']} replicates each; saving, and "
                 "accuracy change in points against the fixed-n runs of the same replicates; "
                 "defaults except the one parameter; the first row is the defaults on the same replicates):", "",
                 markdown_table(header, srows, "l" + "r" * len(result["cases"]))]
    return "\n".join(text) + "\n"


# --------------------------------------------------------------------------------------
# C. the real sampler on the digits demo model
# --------------------------------------------------------------------------------------
#: (k, r) of the sampler measurement; sigma 0.5 as in the demo
SAMPLER_SETTINGS = [(1, 0.25), (1, 0.5), (3, 0.25), (3, 0.5)]
SAMPLER_SIGMA = 0.5


def bench_sampler(seed: int, num_test: int, max_n: int, epochs: int, batch_size: int) -> dict:
    """Adaptive against fixed sampling of the digits CNN (see the module docstring, C)."""
    import torch

    from sampler import sample_adaptive, sample_counts
    from sampler.demo import _torch_state, load_digits_split, train
    from sampler.models import DigitsCNN

    with _torch_state(1):  # one thread: reproducible, and the fastest on a busy machine
        t0 = time.perf_counter()
        init_seed, train_seed, noise_seed = np.random.SeedSequence(seed).generate_state(3).tolist()
        x_train, y_train, x_test, y_test = load_digits_split()
        torch.manual_seed(init_seed)
        model = DigitsCNN(num_classes=10)
        train(model, x_train, y_train, sigma=SAMPLER_SIGMA, epochs=epochs, seed=train_seed)
        t_train = time.perf_counter() - t0
        x, labels = x_test[:num_test], y_test[:num_test].numpy()
        with torch.inference_mode():
            clean = float((model(x).argmax(1).numpy() == labels).mean())
        print(f"trained in {t_train:.1f} s; clean accuracy {clean:.3f}", flush=True)

        start = time.perf_counter()
        fixed = sample_counts(model, x, sigma=SAMPLER_SIGMA, n=max_n, batch_size=batch_size,
                              num_classes=10, seed=noise_seed)
        t_fixed = time.perf_counter() - start
        print(f"fixed n = {max_n:,}: {t_fixed:.1f} s", flush=True)
        cases = []
        for k, r in SAMPLER_SETTINGS:
            start = time.perf_counter()
            simuem = certify(fixed, labels, k=k, sigma=SAMPLER_SIGMA, alpha=ALPHA,
                             method="simuem").radius >= r
            t_certify = time.perf_counter() - start
            ranked = certify(fixed, labels, k=k, sigma=SAMPLER_SIGMA, alpha=ALPHA,
                             method="ranked").radius >= r
            start = time.perf_counter()
            res = sample_adaptive(model, x, labels, k=k, sigma=SAMPLER_SIGMA, alpha=ALPHA,
                                  radius=r, max_n=max_n, batch_size=batch_size,
                                  num_classes=10, seed=noise_seed)
            t_adaptive = time.perf_counter() - start
            full = res.n == max_n
            prefix_ok = bool(np.array_equal(res.counts[full], fixed[full]))
            if not prefix_ok:
                raise RuntimeError("the adaptive counts of the images at max_n differ from "
                                   "their fixed counts: the streams are not shared")
            case = {
                "name": f"digits k={k} r={r:g}", "k": k, "r": r, "inputs": int(num_test),
                "fixed_seconds": t_fixed + t_certify, "adaptive_seconds": t_adaptive,
                "speedup": (t_fixed + t_certify) / t_adaptive,
                "fixed_samples": int(fixed.sum()), "adaptive_samples": int(res.n.sum()),
                "saving": float(fixed.sum() / res.n.sum()), "mean_n": float(res.n.mean()),
                "median_n": float(np.median(res.n)), "full_budget": float(full.mean()),
                "fixed_accuracy_simuem": float(simuem.mean()),
                "fixed_accuracy_ranked": float(ranked.mean()),
                "adaptive_accuracy": float(res.certified.mean()),
                "disagree_ranked": int(np.sum(res.certified != ranked)),
                "decisions": {d: int(np.sum(res.decision == d)) for d in
                              (adaptive.CERTIFIED, adaptive.FUTILE, adaptive.EXHAUSTED)},
                "schedule": res.schedule.tolist(), "prefix_check": prefix_ok, "_n": res.n,
            }
            cases.append(case)
            print(f"{case['name']:20s} adaptive {t_adaptive:6.1f} s vs fixed "
                  f"{case['fixed_seconds']:6.1f} s ({case['speedup']:.1f}x), samples "
                  f"{case['saving']:.1f}x fewer, accuracy {case['adaptive_accuracy']:.3f} vs "
                  f"{case['fixed_accuracy_simuem']:.3f} (simuem) / "
                  f"{case['fixed_accuracy_ranked']:.3f} (ranked)", flush=True)
    return {"train_seconds": t_train, "clean_accuracy": clean, "fixed_sample_seconds": t_fixed,
            "cases": cases}


def plot_sampler(result: dict, max_n: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = result["cases"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    x = np.arange(len(cases))
    ax1.bar(x - 0.2, [c["fixed_seconds"] for c in cases], 0.4, label=f"fixed n = {max_n:,}")
    ax1.bar(x + 0.2, [c["adaptive_seconds"] for c in cases], 0.4, label="adaptive")
    for xi, c in zip(x, cases):
        ax1.text(xi + 0.2, c["adaptive_seconds"], f"{c['speedup']:.1f}x", ha="center",
                 va="bottom", fontsize=8)
    ax1.set_xticks(x, [c["name"].replace("digits ", "") for c in cases], fontsize=8)
    ax1.set_ylabel("wall time (s)")
    ax1.set_title("Digits CNN, sigma 0.5: wall time (label: speed-up)")
    ax1.legend(fontsize=8)
    ax2.bar(x - 0.27, [100 * c["fixed_accuracy_simuem"] for c in cases], 0.27,
            label="fixed, SimuEM")
    ax2.bar(x, [100 * c["fixed_accuracy_ranked"] for c in cases], 0.27, label="fixed, ranked")
    ax2.bar(x + 0.27, [100 * c["adaptive_accuracy"] for c in cases], 0.27, label="adaptive")
    ax2.set_xticks(x, [c["name"].replace("digits ", "") for c in cases], fontsize=8)
    ax2.set_ylabel("certified accuracy at r (%)")
    ax2.set_ylim(0, 105)
    ax2.set_title("Certified accuracy at the target radius")
    ax2.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def markdown_sampler(result: dict, info: dict, args, config: dict) -> str:
    header = ["setting", "images", "fixed (s)", "adaptive (s)", "speed-up", "samples saved",
              "mean n", "median n", "at max_n (%)", "fixed acc. SimuEM (%)",
              "fixed acc. ranked (%)", "adaptive acc. (%)", "differ from ranked"]
    rows = [[c["name"], str(c["inputs"]), f"{c['fixed_seconds']:.1f}",
             f"{c['adaptive_seconds']:.1f}", f"{c['speedup']:.1f}x", f"{c['saving']:.1f}x",
             f"{c['mean_n']:,.0f}", f"{c['median_n']:,.0f}", f"{100 * c['full_budget']:.1f}",
             f"{100 * c['fixed_accuracy_simuem']:.1f}", f"{100 * c['fixed_accuracy_ranked']:.1f}",
             f"{100 * c['adaptive_accuracy']:.1f}", str(c["disagree_ranked"])]
            for c in result["cases"]]
    schedule = result["cases"][0]["schedule"]
    import torch

    text = [
        "# Adaptive against fixed sampling with the real sampler (digits CNN)"
        + (" (quick run)" if args.quick else ""), "",
        f"Machine: {machine_line(info)} torch {torch.__version__}, 1 thread. Seed {args.seed}.",
        "", f"DigitsCNN trained with the demo's recipe ({config['epochs']} epochs, sigma "
        f"{SAMPLER_SIGMA}, {result['train_seconds']:.0f} s); the first {config['num_test']} "
        f"test images (clean accuracy {result['clean_accuracy']:.3f}); batch "
        f"{config['batch_size']}; alpha = {ALPHA}. Fixed: n = {config['max_n']:,} samples "
        f"of every image ({result['fixed_sample_seconds']:.1f} s, once for all settings), "
        "plus the setting's certification. Adaptive: `sample_adaptive` with its defaults, "
        f"max_n = {config['max_n']:,}; 8x8 inputs have noise blocks of 2,048 samples, so the "
        f"looks are {', '.join(f'{v:,}' for v in schedule)}. Wall times in one run, "
        "one after the other.", "",
        markdown_table(header, rows, "lrrrrrrrrrrrr"),
        "Every image that drew max_n samples adaptively has exactly its fixed counts "
        "(checked): the two runs share their noise streams, so the accuracy columns compare "
        "decisions on the same samples.",
    ]
    return "\n".join(text) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--sampler", action="store_true",
                        help="run C, the real sampler on the digits demo model, instead")
    args = parser.parse_args(argv)
    if args.sampler:
        return main_sampler(args)
    if args.quick:
        config = dict(replicates=1, n_imagenet=40, n_cifar=100, sensitivity_replicates=0,
                      extras=False)
    else:
        config = dict(replicates=10, n_imagenet=300, n_cifar=None, sensitivity_replicates=3,
                      extras=True)
    info = machine_info()
    start = time.time()
    result = bench(args.seed, **config)
    data = {"machine": info, "seed": args.seed, "alpha": ALPHA, "max_n": MAX_N,
            "defaults": DEFAULTS, "config": config, "wall_seconds": time.time() - start,
            "cases": [{k: v for k, v in c.items() if not k.startswith("_")} for c in result["cases"]],
            "extra": [{k: v for k, v in c.items() if not k.startswith("_")} for c in result["extra"]],
            "sensitivity": result["sensitivity"]}
    fig = plot(result["cases"])
    paths = write_results("adaptive", args.quick, args.out, data,
                          markdown(result, info, args, config), fig)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def main_sampler(args) -> int:
    if args.quick:
        config = dict(num_test=40, max_n=6144, epochs=5, batch_size=2000)
    else:
        config = dict(num_test=200, max_n=20_000, epochs=40, batch_size=2000)
    info = machine_info()
    start = time.time()
    result = bench_sampler(args.seed, **config)
    data = {"machine": info, "seed": args.seed, "alpha": ALPHA, "sigma": SAMPLER_SIGMA,
            "config": config, "wall_seconds": time.time() - start,
            **{k: v for k, v in result.items() if k != "cases"},
            "cases": [{k: v for k, v in c.items() if not k.startswith("_")}
                      for c in result["cases"]]}
    fig = plot_sampler(result, config["max_n"])
    paths = write_results("adaptive_sampler", args.quick, args.out, data,
                          markdown_sampler(result, info, args, config), fig)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
