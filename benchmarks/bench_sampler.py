"""Cost and memory of :func:`sampler.sample_counts` against the bare sampling loop.

Three loops push the same number of samples through the same model, batch by batch:

- ``forward``: the model and argmax on a fixed batch (no noise): the bare forward pass;
- ``bare``: noise + forward + argmax, no counting, one generator, a preallocated buffer:
  the loop of the requirement;
- ``sampler``: ``sample_counts`` (per-block seeded noise, on-device counting, one host
  synchronisation per call).

The overhead is ``time(sampler) / time(bare) - 1`` (goal: at most 10 %). Each loop is
timed in interleaved repeats after a warm-up; the table uses the fastest repeat (other
processes on a shared machine only ever add time) and the JSON keeps every repeat. On the
CPU the default is one torch thread, timed by the process's CPU clock
(``time.process_time``), which other processes on a busy machine barely disturb; with
more threads, or on a GPU, the wall clock. Memory is the peak resident set size of a
fresh process that samples one input ``n`` times with a small MLP, for n = 1e3 .. 1e6.

Usage::

    python benchmarks/bench_sampler.py --quick                 # CPU, a minute or so
    python benchmarks/bench_sampler.py --device cuda --variants  # GPU: each option in turn
    python benchmarks/bench_sampler.py --device cuda --autocast bf16 --channels-last

Writes ``benchmarks/results/sampler_<tag>.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sampler import sample_counts  # noqa: E402

SIGMA = 0.25


def small_cnn() -> torch.nn.Module:
    """A CIFAR-sized CNN: two conv layers, 3.3 MFLOP per 3x32x32 image, 10 classes."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 8 * 8, 10))


def small_mlp() -> torch.nn.Module:
    """An 8x8-digits-sized MLP, cheap enough to sample 1e6 times in seconds."""
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                               torch.nn.Linear(64, 10))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype_name: str | None):
    if dtype_name is None:
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    return torch.autocast(device_type=device.type, dtype=dtype)


def _bare(model, x, n, batch, device, generator) -> None:
    """Noise + forward + argmax, no counting; one synchronisation at the end.

    As lean as the loop can be: one preallocated buffer, one ``normal_`` and one ``add_``
    per batch (Cohen et al.'s loop also allocates ``randn_like(batch) * sigma`` each time).
    """
    buf = torch.empty((batch, *x.shape[1:]), device=device, dtype=x.dtype)
    prediction = None
    for start in range(0, n, batch):
        m = min(batch, n - start)
        noisy = buf[:m].normal_(0.0, SIGMA, generator=generator).add_(x[0])
        prediction = model(noisy).argmax(dim=1)
    _sync(device)
    assert prediction is not None


def _forward(model, x, n, batch, device) -> None:
    """The bare forward pass (and argmax) on a fixed batch: no noise at all."""
    fixed = x[0].expand(batch, *x.shape[1:]).contiguous()
    for start in range(0, n, batch):
        m = min(batch, n - start)
        model(fixed[:m]).argmax(dim=1)
    _sync(device)


def _sampler(model, x, n, batch, device) -> None:
    counts = sample_counts(model, x, sigma=SIGMA, n=n, batch_size=batch, seed=0, device=device)
    assert counts.sum() == n * len(x)


def time_variant(args, variant: dict, batch_sizes, n_total: int, repeats: int) -> list[dict]:
    device = torch.device(args.device)
    model = small_cnn().to(device).eval()
    if variant["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    if variant["compile"]:
        model = torch.compile(model, dynamic=False)
    x = torch.rand(1, 3, 32, 32, device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    rows = []
    for batch in batch_sizes:
        loops = {
            "forward": lambda: _forward(model, x, n_total, batch, device),
            "bare": lambda: _bare(model, x, n_total, batch, device, generator),
            "sampler": lambda: _sampler(model, x, n_total, batch, device),
        }
        times: dict[str, list[float]] = {name: [] for name in loops}
        clock = _clock(device)
        with torch.inference_mode(), _autocast(device, variant["autocast"]):
            for name, loop in loops.items():  # warm-up (and compilation)
                loop()
            for _ in range(repeats):  # interleaved, so load changes hit all loops alike
                for name, loop in loops.items():
                    _sync(device)
                    t0 = clock()
                    loop()
                    times[name].append(clock() - t0)
        best = {name: min(ts) for name, ts in times.items()}
        median = {name: statistics.median(ts) for name, ts in times.items()}
        rows.append({
            "variant": variant["name"], "batch": batch, "samples": n_total,
            "forward_img_s": n_total / best["forward"],
            "bare_img_s": n_total / best["bare"],
            "sampler_img_s": n_total / best["sampler"],
            "overhead_vs_bare": best["sampler"] / best["bare"] - 1,
            "overhead_vs_bare_median": median["sampler"] / median["bare"] - 1,
            "sampler_vs_forward": best["sampler"] / best["forward"],
            "seconds": {name: ts for name, ts in times.items()},
        })
        print(_format_speed_row(rows[-1]), flush=True)
    return rows


def _clock(device: torch.device):
    if device.type == "cpu" and torch.get_num_threads() == 1:
        return time.process_time
    return time.perf_counter


def _memory_child(n: int, device: str) -> None:
    torch.set_num_threads(1)
    model = small_mlp().to(device)
    x = torch.rand(1, 1, 8, 8, device=device)
    counts = sample_counts(model, x, sigma=SIGMA, n=n, batch_size=1000, seed=0)
    assert counts.sum() == n
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    print(json.dumps({"n": n, "peak_rss_mib": peak, "peak_gpu_mib": gpu}))


def measure_memory(args, ns) -> list[dict]:
    rows = []
    for n in ns:
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(n),
                              "--device", args.device], capture_output=True, text=True,
                             check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        rows[-1]["growth_mib"] = rows[-1]["peak_rss_mib"] - rows[0]["peak_rss_mib"]
        print(f"n={n:>9,d}  peak RSS {rows[-1]['peak_rss_mib']:8.1f} MiB  "
              f"(+{rows[-1]['growth_mib']:.1f} MiB over n={ns[0]:,d})", flush=True)
    return rows


def _format_speed_row(r: dict) -> str:
    return (f"{r['variant']:<14} batch {r['batch']:>5}  forward {r['forward_img_s']:9.0f} img/s"
            f"  bare {r['bare_img_s']:9.0f} img/s  sampler {r['sampler_img_s']:9.0f} img/s"
            f"  overhead vs bare {100 * r['overhead_vs_bare']:+6.1f} % "
            f"(medians {100 * r['overhead_vs_bare_median']:+.1f} %)")


def _markdown(meta: dict, speed: list[dict], memory: list[dict]) -> str:
    lines = [f"# sample_counts benchmark ({meta['device_name']})", "",
             f"torch {meta['torch']}, {meta['threads']} threads ({meta['clock']}), "
             f"{meta['samples']} samples "
             f"per loop, fastest of {meta['repeats']} interleaved repeats, sigma={SIGMA}.", "",
             "| variant | batch | forward img/s | bare loop img/s | sampler img/s "
             "| overhead vs bare | (medians) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in speed:
        lines.append(f"| {r['variant']} | {r['batch']} | {r['forward_img_s']:.0f} "
                     f"| {r['bare_img_s']:.0f} | {r['sampler_img_s']:.0f} "
                     f"| {100 * r['overhead_vs_bare']:+.1f} % "
                     f"| {100 * r['overhead_vs_bare_median']:+.1f} % |")
    lines += ["", "Peak resident memory of a fresh process sampling one 8x8 input n times "
              "(MLP, batch 1000):", "", "| n | peak RSS (MiB) | growth over smallest n (MiB) |",
              "|---:|---:|---:|"]
    for m in memory:
        lines.append(f"| {m['n']:,d} | {m['peak_rss_mib']:.1f} | {m['growth_mib']:+.1f} |")
    return "\n".join(lines) + "\n"


def _figure(path: Path, meta: dict, speed: list[dict], memory: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = [f"{r['variant']}\nb={r['batch']}" for r in speed]
    positions = range(len(speed))
    width = 0.27
    for offset, key, name in [(-width, "forward_img_s", "forward only"),
                              (0, "bare_img_s", "bare loop"), (width, "sampler_img_s", "sampler")]:
        left.bar([p + offset for p in positions], [r[key] for r in speed], width, label=name)
    left.set_xticks(list(positions), labels, fontsize=8)
    left.set_ylabel("images per second")
    left.set_title(f"small CNN, {meta['device_name']}", fontsize=10)
    left.legend(fontsize=8)
    for p, r in zip(positions, speed):
        left.annotate(f"{100 * r['overhead_vs_bare']:+.1f}%", (p + width, r["sampler_img_s"]),
                      ha="center", va="bottom", fontsize=7)
    right.plot([m["n"] for m in memory], [m["peak_rss_mib"] for m in memory], "o-")
    right.set_xscale("log")
    right.set_ylim(0, max(m["peak_rss_mib"] for m in memory) * 1.3)
    right.set_xlabel("samples per input n")
    right.set_ylabel("peak RSS (MiB)")
    right.set_title("memory does not grow with n (MLP, batch 1000)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and repeats")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--autocast", choices=("bf16", "fp16"))
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--variants", action="store_true",
                        help="time plain, channels_last, bf16, fp16 and compile in turn")
    parser.add_argument("--batch", type=int, nargs="+", help="batch sizes")
    parser.add_argument("--threads", type=int,
                        help="torch CPU threads (default: 1 on the CPU, torch's default on a GPU)")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        _memory_child(args.memory_child, args.device)
        return 0

    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if args.threads or not gpu:
        torch.set_num_threads(args.threads or 1)
    batch_sizes = args.batch or ([64, 256] if args.quick else [64, 256, 1024])
    if gpu and not args.batch:
        batch_sizes = [256, 1024] if args.quick else [256, 1024, 4096]
    # Many short interleaved repeats: the fastest of them is stable even on a busy machine.
    n_total = (1024 if args.quick else 4096) * (32 if gpu else 1)
    repeats = 15 if args.quick else 25
    one = {"channels_last": args.channels_last, "autocast": args.autocast,
           "compile": args.compile}
    one["name"] = "+".join([k for k in ("channels_last", "compile") if one[k]]
                           + ([args.autocast] if args.autocast else [])) or "plain"
    variants = [one]
    if args.variants:
        variants = [dict(name="plain", channels_last=False, autocast=None, compile=False),
                    dict(name="channels_last", channels_last=True, autocast=None, compile=False),
                    dict(name="bf16", channels_last=False, autocast="bf16", compile=False),
                    dict(name="fp16", channels_last=False, autocast="fp16", compile=False),
                    dict(name="compile", channels_last=False, autocast=None, compile=True)]
    name = torch.cuda.get_device_name(device) if gpu else (platform.processor() or "cpu")
    meta = {"device": str(device), "device_name": name, "torch": torch.__version__,
            "clock": _clock(device).__name__,
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "samples": n_total, "repeats": repeats, "quick": args.quick}
    print(f"# {meta}", flush=True)
    speed = []
    for variant in variants:
        speed += time_variant(args, variant, batch_sizes, n_total, repeats)
    ns = [10**3, 10**4, 10**5, 10**6]
    memory = measure_memory(args, ns)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = device.type + ("" if len(variants) > 1 or one["name"] == "plain"
                         else "_" + one["name"].replace("+", "_"))
    (out / f"sampler_{tag}.json").write_text(json.dumps(
        {"meta": meta, "speed": speed, "memory": memory}, indent=1) + "\n")
    (out / f"sampler_{tag}.md").write_text(_markdown(meta, speed, memory))
    _figure(out / f"sampler_{tag}.png", meta, speed, memory)
    print(f"wrote {out}/sampler_{tag}.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
