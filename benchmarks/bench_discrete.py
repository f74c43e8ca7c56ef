"""Cost of exact discrete Gaussian noise (``noise="discrete"``) against float Gaussian noise.

Two measurements, both with interleaved repeats (so that load changes on a shared machine
hit both alike) and medians:

- end to end: :func:`sampler.sample_counts` with the small CIFAR-sized CNN of
  ``bench_sampler.py`` on 3x32x32 inputs on the 8-bit grid (``i / 255``), batch 500,
  sigma 0.25, ``noise="gaussian"`` against ``noise="discrete"``; the ratio of the medians
  (goal: at most 1.5x, aim 1.1x on the CPU; on a GPU images per second within 10 %);
- raw noise generation: ``fill_`` of one 128-sample block of 3x32x32 noisy images, for the
  Gaussian noise, the discrete noise (alias table), and, as the design's baseline, the
  same offsets drawn by inverting the words through the CDF thresholds with
  ``torch.searchsorted`` (what the alias table replaces): noisy images per second.

On the CPU the default is one torch thread timed by the process's CPU clock
(``time.process_time``), which other processes barely disturb; with more threads, or on
a GPU, the wall clock after a synchronisation.

Usage::

    python benchmarks/bench_discrete.py --quick            # CPU smoke run, ~15 s
    python benchmarks/bench_discrete.py                    # CPU, ~2 min
    python benchmarks/bench_discrete.py --device cuda      # GPU

Writes ``benchmarks/results/discrete.{json,md}`` (``discrete_<device>`` off the CPU;
``_quick`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_sampler import small_cnn  # noqa: E402

from sampler import sample_counts  # noqa: E402
from sampler.discrete import DiscreteGaussianNoise  # noqa: E402
from sampler.noise import GaussianNoise  # noqa: E402

SIGMA = 0.25
GRID = 255
SHAPE = (3, 32, 32)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _clock(device: torch.device):
    if device.type == "cpu" and torch.get_num_threads() == 1:
        return time.process_time
    return time.perf_counter


def _timed(loops: dict, repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Every loop once to warm up, then ``repeats`` interleaved rounds; seconds per call."""
    clock = _clock(device)
    for loop in loops.values():
        loop()
    times: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(repeats):
        for name, loop in loops.items():
            _sync(device)
            t0 = clock()
            loop()
            _sync(device)
            times[name].append(clock() - t0)
    return times


def end_to_end(device: torch.device, n: int, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = small_cnn().to(device).eval()
    x = (torch.randint(0, GRID + 1, (1, *SHAPE), generator=torch.Generator().manual_seed(0))
         .float() / GRID).to(device)

    def run(noise: str):
        def loop():
            counts = sample_counts(model, x, sigma=SIGMA, n=n, batch_size=batch, seed=0,
                                   device=device, noise=noise)
            assert counts.sum() == n
        return loop

    times = _timed({"gaussian": run("gaussian"), "discrete": run("discrete")}, repeats,
                   device)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    pair_ratios = [d / g for g, d in zip(times["gaussian"], times["discrete"])]
    return {"samples": n, "batch": batch,
            "gaussian_img_s": n / median["gaussian"], "discrete_img_s": n / median["discrete"],
            "ratio_of_medians": median["discrete"] / median["gaussian"],
            "median_of_pair_ratios": statistics.median(pair_ratios),
            "seconds": times}


def _inversion_fill(noise: DiscreteGaussianNoise, device: torch.device):
    """The searchsorted baseline: the same offset distribution by CDF inversion."""
    thresholds = torch.from_numpy(noise.table.cdf_thresholds()).to(device)
    grid_t = torch.tensor(float(GRID), device=device)

    def fill(out, x, generator):
        d = x.numel()
        base = torch.round(x.reshape(-1).double() * GRID).long() - noise.table.J
        u = torch.empty((out.shape[0], d), dtype=torch.int64, device=device)
        u.random_(generator=generator)
        index = torch.searchsorted(thresholds, u, right=True)
        out.view(out.shape[0], d).copy_(index.add_(base)).div_(grid_t)

    return fill


def noise_rate(device: torch.device, repeats: int, blocks: int) -> dict:
    x = (torch.randint(0, GRID + 1, SHAPE, generator=torch.Generator().manual_seed(0))
         .float() / GRID).to(device)
    out = torch.empty((128, *SHAPE), device=device)
    generator = torch.Generator(device=device)
    gaussian, discrete = GaussianNoise(SIGMA), DiscreteGaussianNoise(SIGMA, GRID)
    inversion = _inversion_fill(discrete, device)

    def run(fill):
        def loop():
            for b in range(blocks):
                generator.manual_seed(b)
                fill(out, x, generator)
        return loop

    times = _timed({"gaussian": run(gaussian.fill_), "discrete": run(discrete.fill_),
                    "inversion": run(inversion)}, repeats, device)
    images = blocks * out.shape[0]
    rates = {name: images / statistics.median(ts) for name, ts in times.items()}
    return {"images_per_call": images, "coordinates_per_image": x.numel(),
            "img_s": rates,
            "coordinates_s": {k: v * x.numel() for k, v in rates.items()},
            "discrete_time_vs_gaussian": rates["gaussian"] / rates["discrete"],
            "inversion_time_vs_gaussian": rates["gaussian"] / rates["inversion"],
            "seconds": times}


def _markdown(meta: dict, e2e: dict, raw: dict) -> str:
    lines = [f"# Discrete against Gaussian noise ({meta['device_name']})", "",
             f"torch {meta['torch']}, {meta['threads']} thread(s) ({meta['clock']}), "
             f"sigma={SIGMA}, grid={GRID}, 3x32x32 inputs; medians of {meta['repeats']} "
             "interleaved repeats, measured in one run.", "",
             f"End to end: `sample_counts`, small CNN, batch {e2e['batch']}, "
             f"{e2e['samples']} samples per call.", "",
             "| noise | images/s |", "|---|---:|",
             f"| gaussian | {e2e['gaussian_img_s']:.0f} |",
             f"| discrete | {e2e['discrete_img_s']:.0f} |", "",
             f"Time of discrete over Gaussian: **{e2e['ratio_of_medians']:.3f}x** (ratio of "
             f"medians; median of the per-repeat ratios {e2e['median_of_pair_ratios']:.3f}x).",
             "", f"Raw noise generation (`fill_`, blocks of 128 images, "
             f"{raw['images_per_call']} images per call):", "",
             "| noise | noisy images/s | coordinates/s | time vs Gaussian |",
             "|---|---:|---:|---:|"]
    names = {"gaussian": "gaussian (float)", "discrete": "discrete (alias table)",
             "inversion": "discrete by searchsorted (baseline)"}
    for key, label in names.items():
        ratio = raw["img_s"]["gaussian"] / raw["img_s"][key]
        lines.append(f"| {label} | {raw['img_s'][key]:.0f} | "
                     f"{raw['coordinates_s'][key]:.3g} | {ratio:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and repeats")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--threads", type=int,
                        help="torch CPU threads (default: 1 on the CPU, torch's default on a GPU)")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if args.threads or not gpu:
        torch.set_num_threads(args.threads or 1)
    n = (3 if args.quick else 20) * args.batch * (10 if gpu else 1)
    repeats = 5 if args.quick else 11
    blocks = (4 if args.quick else 16) * (8 if gpu else 1)
    name = torch.cuda.get_device_name(device) if gpu else (platform.processor() or "cpu")
    meta = {"device": str(device), "device_name": name, "torch": torch.__version__,
            "clock": _clock(device).__name__, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "repeats": repeats, "quick": args.quick,
            "sigma": SIGMA, "grid": GRID}
    print(f"# {meta}", flush=True)
    raw = noise_rate(device, repeats, blocks)
    print("raw noise, noisy images/s: " + ", ".join(
        f"{k} {v:.0f}" for k, v in raw["img_s"].items()), flush=True)
    e2e = end_to_end(device, n, args.batch, repeats)
    print(f"end to end, images/s: gaussian {e2e['gaussian_img_s']:.0f}, discrete "
          f"{e2e['discrete_img_s']:.0f}: discrete takes {e2e['ratio_of_medians']:.3f}x the "
          f"time (median of pair ratios {e2e['median_of_pair_ratios']:.3f}x)", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "discrete" + ("" if device.type == "cpu" else f"_{device.type}") \
        + ("_quick" if args.quick else "")
    (out / f"{tag}.json").write_text(json.dumps(
        {"meta": meta, "end_to_end": e2e, "noise": raw}, indent=1) + "\n")
    (out / f"{tag}.md").write_text(_markdown(meta, e2e, raw))
    print(f"wrote {out}/{tag}.{{json,md}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
