"""Wall time and peak memory of ``topk-bounds certify`` on large count files.

Three measurements, each a fresh process (wall time from start to exit, peak RSS from
``getrusage(RUSAGE_CHILDREN)`` of a one-child wrapper):

(a) ``topk-bounds certify`` on a 50,000 x 1000 count file (c = 1000 labels, k = 5,
    n = 100,000 samples per row: one dominant label, 2-8 competitors and a thin tail of
    30 labels with 1-3 votes; about 100 MB), against ``numpy.loadtxt(FILE, dtype=int64)``
    in a separate process on the same file. Targets: wall time <= 2.5x (aim 1.5x), peak
    RSS <= 700 MiB (aim 300 MiB).
(b) once, the same kind of file with 10^6 rows (about 2 GB, generated streaming and deleted
    afterwards): wall time and peak RSS (memory must not grow with the rows).
(c) ``topk-bounds certify`` on the 500-row CIFAR-10 file of the paper
    (``../shared/data/cifar10_sigma0.25_counts.txt``), against
    ``python -c "import numpy, scipy.special"``. Target: <= 2x.

Each of (a) and (c) takes the fastest of several runs of each command, alternating them, so
both see the same machine load; the ratio is of those minima. The radii of (a) are checked
against :func:`topk_bounds.certify` on the first rows.

Usage::

    python benchmarks/bench_cli.py                 # (a), (b), (c): several minutes, 2.2 GB of disk
    python benchmarks/bench_cli.py --skip-large    # (a) and (c)
    python benchmarks/bench_cli.py --quick         # a 5,000-row file, (c), no (b): seconds

Files are generated (seed ``--seed``) in a temporary directory (``--tmp`` to choose it) and
removed at the end. Writes ``benchmarks/results/cli.{json,md}`` (``cli_quick.*`` with
``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from bench_certify import machine_info, machine_line, markdown_table  # noqa: E402

C, K, N, SIGMA, ALPHA = 1000, 5, 100_000, 0.25, 0.001
CIFAR = ROOT.parent / "shared" / "data" / "cifar10_sigma0.25_counts.txt"

# Runs argv as its only child and prints wall time and the child's peak RSS (KiB on Linux).
_WRAPPER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": proc.returncode, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "peak_rss_mib": usage.ru_maxrss / 1024, "stderr": proc.stderr.decode()[-500:]}))
"""


def write_count_file(path: Path, rows: int, seed: int) -> None:
    """Rows of c = 1000 counts summing to n, then the label; streamed in blocks."""
    rng = np.random.default_rng(seed)
    zero = [b"0"] * (C + 1)
    with open(path, "wb") as fh:
        for start in range(0, rows, 2000):
            block = []
            for _ in range(min(2000, rows - start)):
                m = int(rng.integers(2, 9))
                labels = rng.choice(C, size=1 + m + 30, replace=False)
                tail = rng.integers(1, 4, size=30)
                dominant = rng.uniform(0.5, 0.99)
                rest = N - int(tail.sum())
                competitors = np.floor(rng.dirichlet(np.ones(m)) * (1 - dominant) * rest)
                counts = np.zeros(C, dtype=np.int64)
                counts[labels[1:m + 1]] = competitors
                counts[labels[m + 1:]] = tail
                counts[labels[0]] = N - counts.sum()
                tokens = list(zero)
                for j in np.flatnonzero(counts):
                    tokens[j] = b"%d" % counts[j]
                # the true label is the dominant one 90% of the time
                tokens[C] = b"%d" % (labels[0] if rng.random() < 0.9 else labels[1])
                block.append(b" ".join(tokens))
            fh.write(b"\n".join(block) + b"\n")


def measure(argv: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], capture_output=True, text=True,
                         check=True, env=env, cwd=ROOT)
    result = json.loads(out.stdout)
    if result["rc"] != 0:
        raise RuntimeError(f"{argv} failed ({result['rc']}): {result['stderr']}")
    return result


def certify_argv(path: Path, out: Path, k: int, sigma: float) -> list[str]:
    return [sys.executable, "-m", "topk_bounds.cli", "certify", str(path), "--k", str(k),
            "--sigma", repr(sigma), "--alpha", repr(ALPHA), "--out", str(out)]


def compare(ours: list[str], reference: list[str], repeats: int) -> dict:
    """Fastest of ``repeats`` alternating runs of each command, and the ratio of the two."""
    runs = {"ours": [], "reference": []}
    for _ in range(repeats):
        runs["reference"].append(measure(reference))
        runs["ours"].append(measure(ours))
    best = {name: min(r["wall_s"] for r in rs) for name, rs in runs.items()}
    return {"ours_wall_s": best["ours"], "reference_wall_s": best["reference"],
            "ratio": best["ours"] / best["reference"],
            "ours_peak_rss_mib": max(r["peak_rss_mib"] for r in runs["ours"]),
            "reference_peak_rss_mib": max(r["peak_rss_mib"] for r in runs["reference"]),
            "ours_runs_s": [r["wall_s"] for r in runs["ours"]],
            "reference_runs_s": [r["wall_s"] for r in runs["reference"]], "repeats": repeats}


def check_radii(path: Path, out: Path, rows: int) -> bool:
    """The CLI's radii of the first rows equal those of the API, bit for bit."""
    from topk_bounds import certify

    table = np.loadtxt(path, dtype=np.int64, max_rows=rows)
    api = certify(table[:, :-1], table[:, -1], k=K, sigma=SIGMA, alpha=ALPHA).radius
    lines = out.read_text().splitlines()[2:2 + rows]
    return [float(line.split("\t")[2]) for line in lines] == api.tolist()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 5,000-row file and no (b)")
    parser.add_argument("--skip-large", action="store_true", help="leave out (b)")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--tmp", type=Path, help="directory for the generated files")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    rows_a = 5_000 if args.quick else 50_000
    repeats = 2 if args.quick else 3
    data = {"benchmark": "cli", "quick": args.quick, "seed": args.seed, "machine": machine_info(),
            "c": C, "k": K, "n": N, "sigma": SIGMA, "alpha": ALPHA}

    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="bench_cli_") as tmp:
        tmp = Path(tmp)
        path = tmp / "counts_a.txt"
        t0 = time.perf_counter()
        write_count_file(path, rows_a, args.seed)
        print(f"(a) generated {rows_a:,} x {C} rows ({path.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        loadtxt = [sys.executable, "-c",
                   f"import numpy; numpy.loadtxt({str(path)!r}, dtype=numpy.int64)"]
        a = compare(certify_argv(path, tmp / "radii_a.tsv", K, SIGMA), loadtxt, repeats)
        a.update(rows=rows_a, file_mb=path.stat().st_size / 1e6,
                 radii_match_api=check_radii(path, tmp / "radii_a.tsv", 2000))
        data["a"] = a
        print(f"(a) certify {a['ours_wall_s']:.2f} s, loadtxt {a['reference_wall_s']:.2f} s: "
              f"ratio {a['ratio']:.2f} (target <= 2.5, aim 1.5); peak RSS "
              f"{a['ours_peak_rss_mib']:.0f} MiB (loadtxt {a['reference_peak_rss_mib']:.0f} MiB; "
              f"target <= 700, aim 300); radii match the API: {a['radii_match_api']}", flush=True)
        path.unlink()

        if args.quick or args.skip_large:
            data["b"] = {"skipped": "--quick" if args.quick else "--skip-large"}
        else:
            free = shutil.disk_usage(tmp).free
            if free < 2.5e9:
                data["b"] = {"skipped": f"only {free / 1e9:.1f} GB free in {tmp}"}
            else:
                big = tmp / "counts_b.txt"
                t0 = time.perf_counter()
                write_count_file(big, 1_000_000, args.seed + 1)
                size = big.stat().st_size
                print(f"(b) generated 1,000,000 x {C} rows ({size / 1e9:.2f} GB) in "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
                run = measure(certify_argv(big, tmp / "radii_b.tsv", K, SIGMA))
                data["b"] = {"rows": 1_000_000, "file_gb": size / 1e9, "wall_s": run["wall_s"],
                             "cpu_s": run["cpu_s"], "peak_rss_mib": run["peak_rss_mib"]}
                big.unlink()
            print(f"(b) {data['b']}", flush=True)

        if CIFAR.is_file():
            imports = [sys.executable, "-c", "import numpy, scipy.special"]
            cifar = compare(certify_argv(CIFAR, tmp / "radii_c.tsv", 3, 0.25), imports,
                            3 if args.quick else 7)
            data["c_cifar"] = cifar
            print(f"(c) CIFAR certify {cifar['ours_wall_s']:.3f} s, import numpy+scipy.special "
                  f"{cifar['reference_wall_s']:.3f} s: ratio {cifar['ratio']:.2f} (target <= 2)",
                  flush=True)
        else:
            data["c_cifar"] = {"skipped": f"{CIFAR} not found"}

    info = data["machine"]
    rows = [["(a) certify, {:,} x {} file, k = {}".format(rows_a, C, K),
             f"{a['ours_wall_s']:.2f}", f"{a['reference_wall_s']:.2f} (numpy.loadtxt)",
             f"**{a['ratio']:.2f}x**", f"{a['ours_peak_rss_mib']:.0f}",
             f"{a['reference_peak_rss_mib']:.0f}"]]
    b = data["b"]
    rows.append(["(b) certify, 1,000,000 x 1000 file"] +
                ([f"{b['wall_s']:.1f}", "", "", f"{b['peak_rss_mib']:.0f}", ""]
                 if "wall_s" in b else [f"skipped ({b['skipped']})", "", "", "", ""]))
    c = data["c_cifar"]
    rows.append(["(c) certify, CIFAR-10 file (500 x 10), k = 3"] +
                ([f"{c['ours_wall_s']:.3f}", f"{c['reference_wall_s']:.3f} (import numpy, "
                  "scipy.special)", f"**{c['ratio']:.2f}x**", f"{c['ours_peak_rss_mib']:.0f}",
                  f"{c['reference_peak_rss_mib']:.0f}"]
                 if "ratio" in c else [f"skipped ({c['skipped']})", "", "", "", ""]))
    md = (f"# topk-bounds certify on large files{' (quick)' if args.quick else ''}\n\n"
          f"{machine_line(info)} Wall time of a fresh process (fastest of {repeats} runs for "
          f"(a); alternating with the reference), peak RSS from getrusage. c = {C}, n = {N:,}, "
          f"sigma = {SIGMA}, alpha = {ALPHA}, SimuEM. Targets: (a) <= 2.5x loadtxt and "
          "<= 700 MiB; (c) <= 2x the imports.\n\n"
          + markdown_table(["run", "wall s", "reference wall s", "ratio", "peak RSS MiB",
                            "reference peak RSS MiB"], rows, "lrrrrr")
          + f"\nRadii of the first 2,000 rows of (a) equal `topk_bounds.certify`'s: "
            f"{a['radii_match_api']}.\n")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "cli_quick" if args.quick else "cli"
    (args.out / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (args.out / f"{stem}.md").write_text(md, encoding="utf-8")
    print(f"wrote {args.out / f'{stem}.json'}, {args.out / f'{stem}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
