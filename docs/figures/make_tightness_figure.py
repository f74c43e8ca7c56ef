"""Draw docs/figures/worst_case_classifier.png (the witness of Theorem 2 and the LP check).

Run from the repository root:  python docs/figures/make_tightness_figure.py
Needs matplotlib (the ``plot`` extra). Deterministic: no randomness is involved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

A, B, K, SIGMA = 0.55, [0.2, 0.15, 0.1, 0.1], 2, 1.0
OUT = Path(__file__).resolve().parent / "worst_case_classifier.png"


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    from topk_bounds import topk_radius
    from topk_bounds._lp_oracle import margin_bracket, predicted_margin
    from topk_bounds.tightness import classifier_probabilities, worst_case_classifier

    r_l = topk_radius(A, B, K, SIGMA)
    radius = r_l * (1 + 1e-4)
    s = radius / SIGMA
    clf = worst_case_classifier(A, B, K, SIGMA, radius)
    p_x = classifier_probabilities(clf, 0.0, n_others=len(B))
    p_s = classifier_probabilities(clf, s, n_others=len(B))

    colors = {-1: "#d62728", 0: "#1f77b4", 1: "#2ca02c", 2: "#9467bd", 3: "#8c564b"}
    names = {-1: "l", 0: "label 0", 1: "label 1", 2: "label 2", 3: "label 3"}

    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8.0, 7.2), gridspec_kw={"height_ratios": [1.25, 1]})
    lo_w, hi_w = -3.5, s + 3.5
    w = np.linspace(lo_w, hi_w, 800)
    seen = set()
    for lab, lo, hi in clf:
        left, right = max(lo, lo_w), min(hi, hi_w)
        if left >= right:
            continue
        label = None
        if lab not in seen:
            seen.add(lab)
            label = f"{names[lab]}: {p_x[lab]:.3f} at x, {p_s[lab]:.4f} at x+δ"
        ax.axvspan(left, right, color=colors[lab], alpha=0.22, lw=0, label=label)
        if np.isfinite(lo):
            ax.axvline(lo, color="0.35", lw=0.6)
    ax.plot(w, norm.pdf(w), color="k", lw=1.6, label="density of w at x: N(0, 1)")
    ax.plot(w, norm.pdf(w - s), color="k", lw=1.6, ls="--", label=f"at x+δ: N({s:.3f}, 1)")
    ax.set_xlim(lo_w, hi_w)
    ax.set_ylim(0, 0.55)
    ax.set_xlabel("w = <y − x, δ/‖δ‖> / σ")
    ax.set_title(
        f"Worst-case classifier, a = {A}, b = {B}, k = {K}, at ‖δ‖ = R_l(1 + 1e-4) = {radius:.4f}σ",
        fontsize=10,
    )
    ax.legend(fontsize=7.5, loc="upper left", ncol=2, framealpha=0.9)

    shifts = np.linspace(r_l / SIGMA - 0.4, r_l / SIGMA + 0.4, 9)
    fine = np.linspace(shifts[0], shifts[-1], 200)
    ax2.plot(fine, [float(predicted_margin(A, B, K, x)) for x in fine], color="k", lw=1.2,
             label="closed form: min_t G(B_t)/t − Φ(Φ⁻¹(a) − s)")
    lower, upper = [], []
    for x in shifts:
        br = margin_bracket(A, B, x, k=K, cells=1000)
        lower.append(br.lower)
        upper.append(br.upper)
    mid = (np.array(lower) + np.array(upper)) / 2
    ax2.errorbar(shifts, mid, yerr=(mid - np.array(lower), np.array(upper) - mid), fmt="o",
                 ms=4, color="#d62728", capsize=3,
                 label=f"LP bracket, 1000 cells (width ≤ {max(u - l for l, u in zip(lower, upper)):.1e})")
    ax2.axhline(0, color="0.5", lw=0.8)
    ax2.axvline(r_l / SIGMA, color="0.3", lw=0.8, ls=":", label=f"R_l / σ = {r_l / SIGMA:.4f}")
    ax2.set_xlabel("s = ‖δ‖ / σ")
    ax2.set_ylabel("best margin of the top-2 over l")
    ax2.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(OUT, dpi=130)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
