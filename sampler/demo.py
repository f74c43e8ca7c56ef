"""``topk-bounds demo``: train, sample and certify on scikit-learn's digits, end to end.

The pipeline, each step seeded:

1. Load the 1,797 8x8 digit images that ship with scikit-learn (pixels scaled to [0, 1]) and
   split them once, always the same way (stratified, ``random_state=0``; 360 test images).
   ``--seed`` does not change the split.
2. Train :class:`sampler.models.DigitsCNN` on the CPU with Gaussian noise augmentation at
   ``sigma`` (Cohen et al.'s recipe: every training batch gets fresh noise).
3. Count the network's predictions on ``n`` noisy copies of each of the first ``num_test``
   test images (:func:`sampler.sample_counts`) and write them as a count file.
4. Certify each image's *true label* in the top-1, top-2 and top-3 with
   :func:`topk_bounds.certify` (SimuEM bounds, failure probability ``alpha`` per certificate).
   The label is fixed in advance, so no selection stage (Cohen et al.'s ``n0``) is needed.
   The ``predict`` column is the smoothed classifier's top-1 answer from
   :func:`topk_bounds.predict` on the same counts (-1 where it abstains); it does not enter
   the radii.
5. Write the radii, a plot and tables of certified accuracy (:mod:`topk_bounds.report`).
   Every file is computed first and then written with :class:`topk_bounds.io.AtomicGroup`:
   they appear together or not at all (a full disk leaves the directory as it was).

Running it twice with the same arguments gives identical files: the model is initialised
and trained from ``--seed``, the sampler's noise streams are seeded, torch runs with a fixed
number of threads (``--threads``) and deterministic algorithms. Global torch state (thread
count, determinism flag, the default random generator) is restored afterwards.

This module imports torch and scikit-learn only when the demo runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["configure", "run", "run_demo", "DemoResult", "load_digits_split", "train"]

#: Test images in the fixed split (of 1,797).
NUM_TEST = 360
KS = (1, 2, 3)
GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``demo`` subcommand's arguments to ``parser``."""
    from topk_bounds.argtypes import finite_positive, non_negative_int, positive_int, probability

    parser.description = (
        "Train a small CNN with noise on scikit-learn's 8x8 digits, sample counts, and "
        "certify top-1/2/3. Needs the [demo] extra. Default size: about a minute on 2 cores.")
    parser.add_argument("--out", required=True, help="output directory (created if needed)")
    parser.add_argument("--sigma", type=finite_positive("--sigma"), default=0.5,
                        help="noise level, pixels in [0, 1] (default: 0.5)")
    parser.add_argument("--n", type=positive_int("--n"), default=None,
                        help="noise samples per test image (default: 5000; 500 with --quick)")
    parser.add_argument("--num-test", type=positive_int("--num-test"), default=None,
                        help=f"test images to certify, at most {NUM_TEST} "
                             "(default: 200; 100 with --quick)")
    parser.add_argument("--epochs", type=positive_int("--epochs"), default=None,
                        help="training epochs (default: 40; 10 with --quick)")
    parser.add_argument("--alpha", type=probability("--alpha"), default=0.001,
                        help="failure probability of each certificate (default: 0.001)")
    parser.add_argument("--seed", type=non_negative_int("--seed"), default=0,
                        help="seed of the model, the training and the noise (default: 0)")
    parser.add_argument("--batch-size", type=positive_int("--batch-size"), default=2000,
                        help="noisy samples per forward pass (default: 2000)")
    parser.add_argument("--threads", type=_threads, default=1,
                        help=f"torch CPU threads, 1..{_max_threads()}; the numbers are "
                             "reproducible for a fixed value (default: 1, the fastest on a "
                             "busy machine)")
    parser.add_argument("--quick", action="store_true",
                        help="a reduced size for smoke tests (seconds, not a minute)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars on stderr")


def _max_threads() -> int:
    return os.cpu_count() or 1


def _threads(text: str) -> int:
    """``--threads``: an integer in ``1 .. os.cpu_count()``."""
    from topk_bounds.argtypes import positive_int

    value = positive_int("--threads")(text)
    if value > _max_threads():
        raise argparse.ArgumentTypeError(f"--threads must be at most {_max_threads()} (the "
                                         f"CPUs of this machine), got {text!r}")
    return value


def load_digits_split():
    """The fixed train/test split of scikit-learn's digits, as float32 tensors in [0, 1].

    Returns
    -------
    x_train, y_train, x_test, y_test : torch.Tensor
        Images of shape (m, 1, 8, 8) and int64 labels; 1,437 training and 360 test images,
        stratified by class, the same on every call.
    """
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # pixel values 0..16
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target.astype(np.int64), test_size=NUM_TEST, random_state=0,
        stratify=digits.target)
    return (torch.from_numpy(x_train), torch.from_numpy(y_train),
            torch.from_numpy(x_test), torch.from_numpy(y_test))


def train(model, x, y, *, sigma: float, epochs: int, seed: int, batch_size: int = 64,
          progress: bool = False):
    """Train ``model`` in place with Gaussian noise augmentation; returns the last epoch's loss.

    Adam with a one-cycle learning-rate schedule (peak 1e-2). Every batch is shuffled and
    perturbed by a generator seeded with ``seed``, so the run is reproducible.
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(seed)
    steps = -(-len(x) // batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2,
                                                   total_steps=epochs * steps)
    model.train()
    bar = tqdm(range(epochs), desc="train", unit="epoch", file=sys.stderr,
               disable=not progress, leave=False, dynamic_ncols=True)
    loss_sum = 0.0
    for _ in bar:
        order = torch.randperm(len(x), generator=generator)
        loss_sum = 0.0
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            noisy = x[idx] + sigma * torch.randn(x[idx].shape, generator=generator)
            loss = F.cross_entropy(model(noisy), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(idx)
        bar.set_postfix(loss=f"{loss_sum / len(x):.3f}")
    model.eval()
    return loss_sum / len(x)


@contextlib.contextmanager
def _torch_state(threads: int) -> Iterator[None]:
    """Fixed thread count, deterministic algorithms, a private default RNG; all restored."""
    import torch

    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1])


@dataclass(frozen=True, repr=False)
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes
    ----------
    clean_accuracy : float
        The base classifier's accuracy on all clean (noise-free) test images.
    smoothed_accuracy : float
        Fraction of the certified images where :func:`topk_bounds.predict` (k = 1) returns
        the label; abstentions count as wrong.
    abstained : float
        Fraction of the certified images where it abstains.
    table : topk_bounds.report.CertifiedAccuracyTable
        Certified top-1/2/3 accuracy of the certified images.
    paths : tuple of pathlib.Path
        Every file written.
    seconds : dict
        Wall time in seconds of ``train`` (including loading), ``sample`` and ``total``.
    settings : dict
        The run's sizes and parameters, for :meth:`summary`.
    """

    clean_accuracy: float
    smoothed_accuracy: float
    abstained: float
    table: object
    paths: tuple
    seconds: dict
    settings: dict

    def __repr__(self) -> str:
        return (f"DemoResult(clean_accuracy={self.clean_accuracy:.3f}, "
                f"smoothed_accuracy={self.smoothed_accuracy:.3f}, "
                f"total_seconds={self.seconds['total']:.1f})")

    def summary(self) -> str:
        """The lines ``topk-bounds demo`` prints."""
        s, t = self.settings, self.seconds
        lines = [
            f"digits: {s['num_train']} train / {NUM_TEST} test images; certified the first "
            f"{s['num_test']}, sigma={s['sigma']:g}, n={s['n']}, alpha={s['alpha']:g}, "
            f"seed={s['seed']}",
            f"base classifier accuracy on clean test images: {self.clean_accuracy:.3f} "
            f"(chance 0.100); smoothed top-1 accuracy {self.smoothed_accuracy:.3f} "
            f"({self.abstained:.3f} abstained)",
            f"time: train {t['train']:.1f} s, sample {t['sample']:.1f} s, "
            f"total {t['total']:.1f} s",
            "",
            self.table.to_markdown(),
            "",
        ]
        return "\n".join(lines + [f"wrote {path}" for path in self.paths])


def run(args: argparse.Namespace) -> int:
    """Run the ``demo`` subcommand; returns the exit status."""
    from topk_bounds.argtypes import CLIError

    try:
        import matplotlib  # noqa: F401
        import sklearn  # noqa: F401
        import torch  # noqa: F401
        import tqdm  # noqa: F401
    except ImportError as exc:
        raise CLIError(f"the demo needs the [demo] extra (torch, tqdm, matplotlib, "
                       f"scikit-learn): {exc}") from None
    result = run_demo(args.out, sigma=args.sigma,
                      n=args.n or (500 if args.quick else 5000),
                      num_test=args.num_test or (100 if args.quick else 200),
                      epochs=args.epochs or (10 if args.quick else 40),
                      alpha=args.alpha, seed=args.seed, batch_size=args.batch_size,
                      threads=args.threads, progress=args.progress)
    print(result.summary())
    sys.stdout.flush()
    return 0


def run_demo(out: str | Path, *, sigma: float = 0.5, n: int = 5000, num_test: int = 200,
             epochs: int = 40, alpha: float = 0.001, seed: int = 0, batch_size: int = 2000,
             threads: int = 1, progress: bool = False) -> DemoResult:
    """Train, sample, certify and report; the whole demo as a function.

    Writes ``counts.txt``, ``radii.tsv`` and ``certified_accuracy.{png,pdf,md,tex}`` into
    ``out``. Arguments as for the command (see the module docstring). Global torch state is
    restored afterwards.

    Raises
    ------
    ValueError
        If ``num_test`` is not in ``1 .. 360``, ``threads`` not in ``1 .. os.cpu_count()``,
        or ``out`` is an existing file; before any training.
    OSError
        If the files cannot be written; then none of them is (the directory is left as it
        was, or absent).
    """
    if isinstance(num_test, bool) or not isinstance(num_test, int) \
            or not 1 <= num_test <= NUM_TEST:
        raise ValueError(f"num_test must be in 1..{NUM_TEST} (the test split), got {num_test!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) \
            or not 1 <= threads <= _max_threads():
        raise ValueError(f"threads must be an integer in 1..{_max_threads()} (the CPUs of "
                         f"this machine), got {threads!r}")
    for name, value in (("n", n), ("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    from topk_bounds.limits import N_MAX

    if n > N_MAX:
        raise ValueError(f"n must be at most {N_MAX:.0e} (topk_bounds.limits.N_MAX), got {n}")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"out must be a directory, got the existing file {os.fspath(out)!r}")
    parent = os.path.abspath(out)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"out: cannot write into {parent!r} (permission denied)")
    with _torch_state(threads):
        return _pipeline(Path(out), sigma=sigma, n=n, num_test=num_test, epochs=epochs,
                         alpha=alpha, seed=seed, batch_size=batch_size, progress=progress)


def _pipeline(out: Path, *, sigma: float, n: int, num_test: int, epochs: int, alpha: float,
              seed: int, batch_size: int, progress: bool) -> DemoResult:
    import torch

    import topk_bounds
    from sampler import sample_counts
    from sampler.models import DigitsCNN
    from sampler.noise import GaussianNoise
    from topk_bounds.io import AtomicGroup, format_count_row, format_header
    from topk_bounds.report import certified_accuracy_table, write_radii, write_report

    t0 = time.perf_counter()
    init_seed, train_seed, noise_seed = np.random.SeedSequence(seed).generate_state(3).tolist()
    x_train, y_train, x_test, y_test = load_digits_split()
    torch.manual_seed(init_seed)
    model = DigitsCNN(num_classes=10)
    train(model, x_train, y_train, sigma=sigma, epochs=epochs, seed=train_seed,
          progress=progress)
    with torch.inference_mode():
        clean = float((model(x_test).argmax(1) == y_test).double().mean())
    t_train = time.perf_counter() - t0

    x, labels = x_test[:num_test], y_test[:num_test].numpy()
    counts = sample_counts(model, x, sigma=sigma, n=n, batch_size=batch_size, num_classes=10,
                           seed=noise_seed, progress=progress)
    t_sample = time.perf_counter() - t0 - t_train

    radii = {f"top-{k}": topk_bounds.certify(counts, labels, k=k, sigma=sigma, alpha=alpha,
                                             method="simuem").radius for k in KS}
    pred = topk_bounds.predict(counts, k=1, alpha=alpha)
    predict = np.where(pred.abstained, -1, pred.labels[:, 0])
    table = certified_accuracy_table(radii, GRID)
    header = format_header("demo", {"data": "sklearn-digits", "split": "fixed-stratified",
                                    "num_test": num_test, "sigma": repr(sigma), "n": n,
                                    "seed": seed,
                                    **GaussianNoise(sigma).header_fields(int(x[0].numel()))})
    counts_text = "".join([header + "\n", "# 10 counts (labels 0..9), then the true label\n"]
                          + [format_count_row(row, label) for row, label in zip(counts, labels)])
    title = f"sklearn digits, sigma = {sigma:g}, n = {n}, alpha = {alpha:g}"
    # Everything is rendered into a private directory first, with the report's own
    # writers; then all files move into ``out`` together, or none does.
    with tempfile.TemporaryDirectory(prefix="topk-bounds-demo-") as staging:
        staged = [write_radii(Path(staging) / "radii.tsv", labels, radii, predict=predict)]
        staged += write_report(table, staging, title=title)
        written = [out / "counts.txt"] + [out / Path(p).name for p in staged]
        existed = out.exists()
        try:
            with AtomicGroup() as group:
                with group.open(written[0]) as fh:
                    fh.write(counts_text)
                for source, target in zip(staged, written[1:]):
                    with group.open(target, "wb") as fh:
                        fh.write(Path(source).read_bytes())
        except BaseException:
            if not existed:
                with contextlib.suppress(OSError):
                    out.rmdir()  # only if empty: the group removed its temporary files
            raise
    elapsed = time.perf_counter() - t0

    return DemoResult(
        clean_accuracy=clean,
        smoothed_accuracy=float(np.mean(predict == labels)),
        abstained=float(np.mean(predict == -1)),
        table=table,
        paths=tuple(written),
        seconds={"train": t_train, "sample": t_sample, "total": elapsed},
        settings={"num_train": len(x_train), "num_test": num_test, "sigma": sigma, "n": n,
                  "alpha": alpha, "seed": seed},
    )
