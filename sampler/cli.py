"""``topk-bounds sample``: write a count file from a torch model, resumably.

::

    topk-bounds sample --model MODEL --inputs DATA --sigma S --n N --batch B --seed SEED
                       --out FILE [--n0 N0] [--device DEV] [--dist-timeout SECONDS]
                       [--noise {gaussian,discrete}] [--grid G] [--no-progress]
    topk-bounds sample --model MODEL --inputs DATA --sigma S --batch B --seed SEED
                       --out FILE --target-radius R --max-n N --k K --alpha A
                       [--method ranked] [--first-n 128] [--growth 1.5]
                       [--final-share 0.5] [--futility 0.05] [...]

``MODEL`` is a TorchScript file or ``package.module:factory`` (a callable returning a
``torch.nn.Module``; the current directory is importable). ``DATA`` is a ``.pt`` file
holding a dict with ``inputs`` (N, ...), all finite, and ``labels`` (N,).

The output
----------
``FILE`` starts with one ``#`` line, written by :func:`topk_bounds.io.format_header` (kind
``sample``, version 2, values percent-escaped so that any path stays on the line), that
records what determines the rows: the stage and its sample size, the model and the
sha256 of its file (a TorchScript file, or the factory's module source) and of its
weights (parameters and buffers), the inputs file and its sha256, sigma, the seed, the
device type, the classes, the rows and the noise's own fields (``noise``; with ``--noise discrete``
also the grid and the total-variation ``delta`` that ``certify`` allows for). Then it holds one row per
input: the ``n``-sample counts, then the label (:func:`topk_bounds.io.format_count_row`),
the format that ``topk-bounds certify`` reads. Rows are written in order and flushed one
by one. Files are created with mode 0666 less the umask.

Version 2 of the header (this one) goes with version 2 of the block layout
(:mod:`sampler.streams`): the rows of a version 1 file cannot be continued.

With ``--n0``, the selection stage of Cohen et al.'s two-stage procedure is sampled too,
from a separate random stream, and written to ``FILE.n0`` in the same format (rows sum to
``n0``). ``FILE`` is unchanged by ``--n0``: its rows are the estimation counts, exactly those
of a run without it, so ``certify`` consumes it as usual and the selection never shares a
sample with the estimation.

Adaptive certification
----------------------
With ``--target-radius R`` (instead of ``--n``) the command certifies every input's label in
the top ``--k`` at radius ``R`` with :func:`sampler.sample_adaptive`, drawing samples for an
input only until it is decided (certified, or futile: no longer certifiable within
``--max-n``), with failure probability ``--alpha`` per input over all looks
(``docs/adaptive.md``). ``FILE`` then holds the decisions, in the format of
:mod:`topk_bounds.report.adaptive`: a header with ``mode=adaptive`` that also records the
target radius, k, alpha, the method, max_n, the schedule's parameters, the noise blocks'
length (``block``) and the looks themselves; a line of column names; one row per input with
its decision, the radius at the look where it stopped, the samples it used, its number of
looks and its counts. ``topk-bounds certify`` refuses such a file (its counts were gathered
with optional stopping); ``topk-bounds report FILE`` summarises it. Inputs are certified in
chunks of consecutive rows and each chunk's rows are written when it is done; a row depends
only on the header's fields and its row number (its own noise stream), so resuming,
locking and torchrun work exactly as below.

Resuming
--------
Every row depends only on the ``#`` line's fields and the row number (see
:mod:`sampler.streams`), not on ``--batch`` or on the number of ranks. Killed at any moment
and started again with the same arguments, the command keeps every complete row, drops a
torn last line, continues, and ends with exactly the file an uninterrupted run writes. A
file whose ``#`` line differs from this run's is an error, never overwritten; so is a
changed inputs file, model file or set of weights (their hashes differ), which would mix
rows of two data sets or models.

While it runs, the command holds an exclusive lock (``fcntl.flock``) on ``FILE`` (and
``FILE.n0``): a second run on the same output stops at once with one line. The operating
system releases the lock when the process ends, however it ends.

Distributed
-----------
Under ``torchrun`` (``WORLD_SIZE > 1``) the command initialises ``torch.distributed``
(nccl on CUDA, gloo on CPU), every rank samples a share of each input, and rank 0 writes
the same file a single process writes::

    torchrun --nproc_per_node 2 -m topk_bounds.cli -- sample --model ... --n 100000 ...

(the ``--`` keeps torchrun from reading ``--n`` as an abbreviation of its own options).
``--dist-timeout`` (default 600 s) bounds the start-up (every rank must join within it)
and every collective: a rank that never starts, stalls or dies makes every other rank
stop with one line naming the timeout, instead of waiting forever.

This module imports torch only inside :func:`run`, so the other subcommands stay torch-free.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime
import errno
import hashlib
import importlib
import inspect
import os
import re
import sys
from typing import Any

from topk_bounds.argtypes import (CLIError, finite_positive, non_negative_int, positive_int,
                                  probability)

__all__ = ["configure", "run", "HEADER_VERSION"]

#: Version of the ``#`` line (and of the block layout) of the files this command writes.
HEADER_VERSION = 2

_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_HASHED = {
    "inputs_sha256": "the --inputs file changed since {path} was written (its sha256 differs)",
    "model_sha256": "the --model file changed since {path} was written (its sha256 differs)",
    "weights_sha256": "the model's weights differ from those of the run that wrote {path} "
                      "(a factory must build the same model every time: load a checkpoint "
                      "or seed its initialisation)",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``sample`` arguments to ``parser``."""
    parser.description = (
        "Sample a torch model's predictions on Gaussian perturbations of every input of a "
        ".pt file and write their counts per class, one row per input, to a count file "
        "for 'topk-bounds certify'. With --target-radius, certify each input adaptively "
        "instead, drawing only the samples it needs, and write the decisions. Resumable: "
        "run the same command again after an interruption. Needs the [torch] extra.")
    parser.add_argument("--model", required=True,
                        help="TorchScript file, or package.module:factory (a callable "
                             "returning a torch.nn.Module)")
    parser.add_argument("--inputs", required=True,
                        help=".pt file holding a dict with 'inputs' (N, ...) and 'labels' (N,)")
    parser.add_argument("--sigma", type=finite_positive("--sigma"), required=True,
                        help="standard deviation of the Gaussian noise")
    parser.add_argument("--n", type=positive_int("--n"),
                        help="estimation samples per input (the counts in FILE); required "
                             "unless --target-radius is given")
    parser.add_argument("--batch", type=positive_int("--batch"), required=True,
                        help="noisy samples per forward pass (does not change the counts)")
    parser.add_argument("--seed", type=non_negative_int("--seed"), required=True,
                        help="random seed, >= 0")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="count file to write, or to resume if it exists")
    parser.add_argument("--n0", type=positive_int("--n0"),
                        help="also draw N0 selection samples per input (separate stream) "
                             "and write their counts to FILE.n0")
    parser.add_argument("--device", default=None,
                        help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dist-timeout", type=finite_positive("--dist-timeout"),
                        default=600.0, metavar="SECONDS",
                        help="under torchrun: how long a rank waits for the others to start "
                             "and in each collective before it stops (default: 600)")
    parser.add_argument("--no-progress", action="store_true",
                        help="do not show the progress bar on stderr")
    parser.add_argument("--noise", choices=("gaussian", "discrete"), default="gaussian",
                        help="float Gaussian noise (default), or exact discrete Gaussian "
                             "offsets for inputs on the grid i / G (sound in floats; the "
                             "header records its total-variation delta)")
    parser.add_argument("--grid", type=positive_int("--grid"), default=None,
                        help="with --noise discrete: the inputs' grid G (default 255, "
                             "8-bit images in [0, 1])")
    group = parser.add_argument_group(
        "adaptive certification at a target radius (instead of --n; see docs/adaptive.md)")
    group.add_argument("--target-radius", type=finite_positive("--target-radius"),
                       metavar="R", help="certify each input's label in the top k at radius "
                                         "R, sampling it only until that is decided; FILE "
                                         "holds the decisions")
    group.add_argument("--max-n", type=positive_int("--max-n"), metavar="N",
                       help="the most samples drawn for any input")
    group.add_argument("--k", type=positive_int("--k"), help="top-k size")
    group.add_argument("--alpha", type=probability("--alpha"),
                       help="failure probability of each input's certificate, over all looks")
    group.add_argument("--method", choices=("simuem", "binocp", "ranked"), default=None,
                       help="the bounds of every look (default: ranked)")
    group.add_argument("--first-n", type=positive_int("--first-n"), metavar="N",
                       help="the first look (default: 128), rounded up to a whole block of "
                            "the inputs' noise streams")
    group.add_argument("--growth", type=_growth, help="growth of the looks (default: 1.5)")
    group.add_argument("--final-share", type=_final_share, metavar="SHARE",
                       help="share of alpha spent on the final look (default: 0.5)")
    group.add_argument("--futility", type=_futility, metavar="LEVEL",
                       help="level of the futility stop, or 'none' (default: 0.05)")


def run(args: argparse.Namespace) -> int:
    """Sample every input of ``args.inputs`` and write (or finish) ``args.out``."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - the parser already reports this
        raise CLIError(f"'sample' needs torch ({exc}); install it with "
                       "pip install 'topk-bounds[torch]'") from None

    from topk_bounds.limits import N_MAX

    from .collectives import DistributedError
    from .core import ModelError, sample_counts
    from .streams import block_size, check_blocks
    from .two_stage import two_stage_counts

    plan = _adaptive_plan(args)
    for name in ("n", "n0", "max_n"):
        value = getattr(args, name)
        if value is not None and value > N_MAX:
            raise CLIError(f"--{name.replace('_', '-')} must be at most {N_MAX:.0e} (the "
                           f"largest n the bounds support), got {value}")
    outputs = [args.out] + ([args.out + ".n0"] if args.n0 is not None else [])
    _check_outputs(outputs, [args.inputs, args.model])
    data_inputs, labels, inputs_hash = _load_data(args.inputs, torch)
    noise = _noise(args, data_inputs)
    size = block_size(max(1, data_inputs[0].numel()))
    for name in ("n", "n0", "max_n"):
        value = getattr(args, name)
        if value is not None:
            try:
                check_blocks(value, size)
            except ValueError as exc:
                raise CLIError(f"--{name.replace('_', '-')}: {exc}") from None
    if plan is not None:
        plan.set_block(size)
    timeout = datetime.timedelta(seconds=args.dist_timeout)
    session = _Distributed(torch, args.device, timeout)
    files: list[_RowFile] = []
    try:
        device = session.device
        model, model_hash, weights_hash = _load_model(args.model, device, torch)
        width = _probe(model, data_inputs[:1].to(device), torch)
        if int(labels.max()) >= width:
            raise CLIError(f"--inputs: label {int(labels.max())} is outside 0..{width - 1} "
                           f"(the model has {width} outputs)")
        n_rows = len(labels)
        label_list = [int(v) for v in labels.tolist()]
        fields = dict(model=args.model, model_sha256=model_hash, weights_sha256=weights_hash,
                      inputs=args.inputs, inputs_sha256=inputs_hash, sigma=repr(args.sigma),
                      seed=args.seed, device=device.type, classes=width, rows=n_rows)
        # what the noise itself says determines the rows (and, discrete, certify's delta)
        fields.update(noise.header_fields(int(data_inputs[0].numel())))
        start = 0
        failure: CLIError | None = None
        if session.rank == 0:
            try:
                if plan is not None:
                    files.append(_AdaptiveRowFile(args.out, plan.header(fields), width,
                                                  label_list, plan.max_n))
                elif args.n0 is not None:
                    files.append(_RowFile(args.out + ".n0", _header("selection", args.n0,
                                                                    fields),
                                          width, label_list, args.n0))
                if plan is None:
                    files.append(_RowFile(args.out, _header("estimation", args.n, fields),
                                          width, label_list, args.n))
                for f in files:
                    f.lock()
                start = min(f.complete_rows() for f in files)
                for f in files:
                    f.open_at(start)
            except (CLIError, OSError) as exc:
                failure = exc if isinstance(exc, CLIError) else CLIError(_os_message(exc))
        start = session.broadcast_start(start, failure)
        if plan is not None:
            return _run_adaptive(args, plan, session, model, data_inputs, label_list, width,
                                 files[0] if files else None, start)

        per_sample = args.n + (args.n0 or 0)
        bar = _bar(args, session.rank, n_rows * per_sample, start * per_sample, start, n_rows)
        progress = _Scaled(bar, session.world_size) if bar is not None else False
        # Inputs per call: about 8 batches, so that the fixed cost of a call stays small;
        # rows are written (and kept on a kill) call by call.
        per_call = max(1, (8 * args.batch) // args.n)
        common = dict(sigma=args.sigma, batch_size=args.batch, num_classes=width,
                      seed=args.seed, device=device, progress=progress,
                      timeout=session.wait_timeout, noise=args.noise, grid=args.grid)
        try:
            for i in range(start, n_rows, per_call):
                j = min(n_rows, i + per_call)
                chunk = data_inputs[i:j].to(device)
                try:
                    if args.n0 is not None:
                        result = two_stage_counts(model, chunk, n0=args.n0, n=args.n,
                                                  indices=range(i, j), **common)
                        tables = [result.selection, result.estimation]
                    else:
                        tables = [sample_counts(model, chunk, n=args.n, indices=range(i, j),
                                                **common)]
                except ModelError as exc:
                    raise CLIError(f"{exc} (sampling --inputs rows {i}..{j - 1})") from exc
                except DistributedError as exc:
                    session.failed = True
                    raise CLIError(f"{exc}; --dist-timeout is {args.dist_timeout:g} s") from exc
                for row in range(j - i):
                    for f, table in zip(files, tables):
                        f.write(table[row], label_list[i + row])
                if bar is not None:
                    bar.set_postfix_str(f"inputs {j}/{n_rows}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
        for f in files:
            f.close()
        if session.rank == 0:
            done = "already complete" if start == n_rows else f"{n_rows - start} new"
            print(f"wrote {args.out}: {n_rows} rows ({done})", file=sys.stderr)
        return 0
    finally:
        for f in files:
            f.release()
        session.close()


def _noise(args: argparse.Namespace, data_inputs):
    """The run's noise (``--noise``, ``--grid``), with every input checked against it."""
    from .noise import make_noise

    if args.grid is not None and args.noise != "discrete":
        raise CLIError(f"--grid {args.grid} is only used with --noise discrete")
    try:
        noise = make_noise(args.noise, args.sigma, args.grid)
        noise.check_inputs(data_inputs)
    except ValueError as exc:
        text = str(exc)
        flag = ("--inputs" if text.startswith("inputs") else
                "--grid" if text.startswith("grid") else "--noise")
        raise CLIError(f"{flag}: {exc}") from None
    return noise


def _header(stage: str, n: int, fields: dict[str, Any]) -> str:
    from topk_bounds.io import format_header

    size = "n" if stage == "estimation" else "n0"
    return format_header("sample", {"stage": stage, size: n, **fields},
                         version=HEADER_VERSION)


def _growth(text: str) -> float:
    """``--growth``: a finite number > 1."""
    value = finite_positive("--growth")(text)
    if not value > 1.0:
        raise argparse.ArgumentTypeError(f"--growth must be a finite number > 1, got {text!r}")
    return value


def _final_share(text: str) -> float:
    """``--final-share``: a number in (0, 1]."""
    value = finite_positive("--final-share")(text)
    if value > 1.0:
        raise argparse.ArgumentTypeError(f"--final-share must lie in (0, 1], got {text!r}")
    return value


def _futility(text: str) -> float | str:
    """``--futility``: a level in (0, 1), or ``none`` (no futility stop)."""
    if text.strip().lower() == "none":
        return "none"
    return probability("--futility")(text)


#: The options of adaptive mode that need --target-radius, and their defaults.
_ADAPTIVE_OPTIONS = {"max_n": None, "k": None, "alpha": None, "method": "ranked",
                     "first_n": None, "growth": None, "final_share": None, "futility": None}


class _AdaptivePlan:
    """The validated options of ``sample --target-radius`` and the header they make."""

    def __init__(self, args: argparse.Namespace) -> None:
        from topk_bounds.adaptive import FINAL_SHARE, FIRST_N, FUTILITY, GROWTH

        self.target = args.target_radius
        self.max_n, self.k, self.alpha = args.max_n, args.k, args.alpha
        self.method = args.method or "ranked"
        self.first_n = FIRST_N if args.first_n is None else args.first_n
        self.growth = GROWTH if args.growth is None else args.growth
        self.final_share = FINAL_SHARE if args.final_share is None else args.final_share
        futility = FUTILITY if args.futility is None else args.futility
        self.futility = None if futility == "none" else futility
        if self.first_n > self.max_n:
            raise CLIError(f"--first-n {self.first_n} is larger than --max-n {self.max_n}")
        self.block = 0
        self.schedule: list[int] = []

    def set_block(self, block: int) -> None:
        """Fix the schedule: looks at whole noise blocks of ``block`` samples."""
        from topk_bounds.adaptive import look_schedule

        self.block = block
        self.schedule = look_schedule(self.max_n, first_n=self.first_n, growth=self.growth,
                                      multiple_of=block).tolist()

    def header(self, fields: dict[str, Any]) -> str:
        from topk_bounds.io import format_header

        adaptive = dict(mode="adaptive", target_radius=repr(self.target), k=self.k,
                        alpha=repr(self.alpha), method=self.method, max_n=self.max_n,
                        first_n=self.first_n, growth=repr(self.growth),
                        final_share=repr(self.final_share),
                        futility="none" if self.futility is None else repr(self.futility),
                        block=self.block, looks=",".join(map(str, self.schedule)))
        return format_header("sample", {**adaptive, **fields}, version=HEADER_VERSION)

    def chunk(self, batch: int) -> int:
        """Inputs certified per call: the first look fills about 16 forward batches. The rows
        do not depend on it (each row depends only on its own stream), only the packing and
        how much work a kill loses."""
        return max(1, (16 * batch) // self.schedule[0])


def _adaptive_plan(args: argparse.Namespace) -> _AdaptivePlan | None:
    """The adaptive options, checked against the mode: None without --target-radius."""
    given = [name for name, default in _ADAPTIVE_OPTIONS.items()
             if getattr(args, name, default) is not None]
    if args.target_radius is None:
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise CLIError(f"{flag} is only used with --target-radius (adaptive certification)")
        if args.n is None:
            raise CLIError("give --n (samples per input) or --target-radius with --max-n, --k "
                           "and --alpha (adaptive certification)")
        return None
    if args.n is not None:
        raise CLIError("--n and --target-radius exclude each other: adaptive certification "
                       "draws up to --max-n samples per input, as many as each one needs")
    if args.n0 is not None:
        raise CLIError("--n0 is not used with --target-radius: the label certified is the "
                       "one in --inputs, so no selection stage is needed")
    for name in ("max_n", "k", "alpha"):
        if getattr(args, name) is None:
            raise CLIError(f"--target-radius needs --{name.replace('_', '-')}")
    return _AdaptivePlan(args)


def _run_adaptive(args, plan: _AdaptivePlan, session, model, data_inputs, label_list,
                  width: int, out, start: int) -> int:
    """Certify every input from row ``start`` on, chunk by chunk, writing rows in order."""
    from topk_bounds.report.adaptive import format_row

    from .adaptive import sample_adaptive
    from .collectives import DistributedError
    from .core import ModelError

    n_rows = len(label_list)
    per_chunk = plan.chunk(args.batch)
    bar = None
    if not args.no_progress and session.rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=n_rows, initial=start, unit="input", file=sys.stderr,
                   dynamic_ncols=True, desc="certifying", smoothing=0.05)
    certified = samples = 0
    try:
        for i in range(start, n_rows, per_chunk):
            j = min(n_rows, i + per_chunk)
            try:
                res = sample_adaptive(
                    model, data_inputs[i:j].to(session.device), label_list[i:j], k=plan.k,
                    sigma=args.sigma, alpha=plan.alpha, radius=plan.target, max_n=plan.max_n,
                    batch_size=args.batch, method=plan.method, first_n=plan.first_n,
                    growth=plan.growth, final_share=plan.final_share, futility=plan.futility,
                    num_classes=width, seed=args.seed, device=session.device,
                    indices=range(i, j), timeout=session.wait_timeout, noise=args.noise,
                    grid=args.grid)
            except ModelError as exc:
                raise CLIError(f"{exc} (sampling --inputs rows {i}..{j - 1})") from exc
            except DistributedError as exc:
                session.failed = True
                raise CLIError(f"{exc}; --dist-timeout is {args.dist_timeout:g} s") from exc
            if res.schedule.tolist() != plan.schedule:  # pragma: no cover - one source of truth
                raise RuntimeError("internal error: the schedule differs from the header's")
            if out is not None:
                for row in range(j - i):
                    out.write_line(format_row(i + row, label_list[i + row], res.decision[row],
                                              res.radius[row], res.n[row], res.looks[row],
                                              res.counts[row]))
            certified += int(res.certified.sum())
            samples += int(res.n.sum())
            if bar is not None:
                bar.update(j - i)
                bar.set_postfix_str(f"certified {certified}/{j - start}, mean n "
                                    f"{samples / (j - start):,.0f}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    if out is not None:
        out.close()
    if session.rank == 0:
        done = "already complete" if start == n_rows else f"{n_rows - start} new"
        print(f"wrote {args.out}: {n_rows} rows ({done}); adaptive decisions at r = "
              f"{plan.target:g}: report them with 'topk-bounds report {args.out} --out DIR'",
              file=sys.stderr)
    return 0


def _os_message(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def _check_outputs(outputs: list[str], sources: list[str]) -> None:
    """``--out`` must name a file that is neither a directory nor one of the sources."""
    out = outputs[0]
    if not out.strip():
        raise CLIError("--out must name a file, got an empty string")
    if out.endswith(("/", os.sep)) or os.path.isdir(out):
        raise CLIError(f"--out {out!r} is a directory; name the count file to write in it")
    if out.lower().endswith((".npy", ".npz")):
        raise CLIError(f"--out {out!r}: sample writes a text count file (row by row, so that "
                       "it can resume) with its header; name it .txt, and convert it with "
                       "topk_bounds.io.save_counts if you need .npy")
    for path in outputs:
        for source in sources:
            if os.path.exists(path) and os.path.exists(source) \
                    and os.path.samefile(path, source):
                raise CLIError(f"--out {path!r} is the same file as {source!r}; "
                               "choose another --out")


class _RowFile:
    """A count file written row by row; opening it resumes after its last complete row.

    :meth:`lock` opens (or creates) the file and takes an exclusive, non-blocking
    ``flock`` on it, held until :meth:`release`.
    """

    #: A second line of the preamble (column names), or None.
    columns: str | None = None

    def __init__(self, path: str, header: str, width: int, labels: list[int], n: int) -> None:
        self.path = path
        self.header = header
        self.width = width
        self.labels = labels
        self.n = n
        self.ends: list[int] = []  # byte offset after the header and after each row
        self.fd: int | None = None
        self.created = False
        self.fh = None

    def lock(self) -> None:
        import fcntl

        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        while True:
            existed = os.path.exists(self.path)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise CLIError(f"{self.path} is being written by another running "
                                   "'topk-bounds sample' (it holds the file's lock); wait "
                                   "for it to finish or choose another --out") from None
                raise
            try:  # the path may have been replaced while we waited for the lock
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                self.fd, self.created = fd, not existed
                return
            os.close(fd)

    def release(self) -> None:
        """Close the file and drop the lock; remove the file if this run created it empty."""
        try:
            self.close()
        except CLIError:  # a write already failed and was reported
            pass
        if self.fd is None:
            return
        try:
            if self.created and os.fstat(self.fd).st_size == 0:
                os.unlink(self.path)  # still under the lock: nobody else writes it
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    @property
    def preamble(self) -> str:
        """What precedes the rows: the header line, and the column names if any."""
        return self.header + "\n" + (self.columns + "\n" if self.columns is not None else "")

    def complete_rows(self) -> int:
        """Check the existing file and count its complete rows (0 if empty or torn)."""
        from topk_bounds.io import parse_header

        with open(self.path, "rb") as fh:
            data = fh.read()
        complete = data[:data.rfind(b"\n") + 1]  # a torn last line is dropped
        preamble = self.preamble.encode("utf-8")
        if not complete or (self.columns is not None and complete.count(b"\n") < 2
                            and complete.startswith(self.header.encode("utf-8") + b"\n")):
            if not preamble.startswith(data):
                raise CLIError(f"{self.path} exists and is not a count file of this run; "
                               "remove it or choose another --out")
            return 0
        lines = complete.split(b"\n")[:-1]
        first = lines[0].decode("utf-8", "replace")
        if first != self.header:
            try:
                found = parse_header(first)
            except ValueError:
                raise CLIError(f"{self.path} exists and is not a count file of "
                               "'topk-bounds sample'; remove it or choose another --out"
                               ) from None
            body = lines[1:]
            if body and not body[0][:1].isdigit():  # the column names of an adaptive file
                body = body[1:]
            if found.get("kind") == "sample" and not body:
                # a run that stopped before its first row: nothing to lose or to mix
                print(f"topk-bounds sample: note: {self.path} holds only the header of an "
                      "earlier run, no rows; starting it afresh", file=sys.stderr)
                return 0
            raise CLIError(self._difference(found, parse_header(self.header)))
        offset = len(lines[0]) + 1
        skip = 1
        if self.columns is not None:
            if lines[1].decode("utf-8", "replace") != self.columns:
                raise CLIError(f"{self.path} line 2 is not the column names of this run; "
                               "remove the file or choose another --out")
            offset += len(lines[1]) + 1
            skip = 2
        self.ends = [offset]
        for k, line in enumerate(lines[skip:]):
            self._check_row(k, line)
            offset += len(line) + 1
            self.ends.append(offset)
        return len(self.ends) - 1

    def _difference(self, found: dict[str, str], wanted: dict[str, str]) -> str:
        """Why a file's ``#`` line does not continue this run, in one line."""
        if found.get("kind") != "sample":
            return (f"{self.path} exists and is not a count file of 'topk-bounds sample'; "
                    "remove it or choose another --out")
        if found.get("version") != wanted["version"]:
            return (f"{self.path} was written by version {found.get('version')} of "
                    f"'topk-bounds sample', whose rows this version (header v"
                    f"{wanted['version']}, a new block layout) cannot continue; remove it or "
                    "choose another --out")
        keys = list(wanted) + [k for k in found if k not in wanted]
        differing = [k for k in keys if found.get(k) != wanted.get(k)]
        if differing and all(k in _HASHED for k in differing):
            first = next(k for k in _HASHED if k in differing)  # a new model file: new weights
            return (_HASHED[first].format(path=self.path) + "; its rows would mix with this "
                    "run's: remove it or choose another --out")
        pairs = [(k, found.get(k), wanted.get(k)) for k in differing]
        shown = "; ".join(f"it has {k}={_show(a)}, this run {k}={_show(b)}" for k, a, b in pairs)
        return (f"{self.path} was written by a different run ({shown}); remove it or choose "
                "another --out")

    def _check_row(self, k: int, line: bytes) -> None:
        where = f"{self.path} line {k + 2}"
        if k >= len(self.labels):
            raise CLIError(f"{where}: the file has more rows than --inputs has inputs "
                           f"({len(self.labels)})")
        try:
            values = [int(v) for v in line.split()]
        except ValueError:
            raise CLIError(f"{where} is not a row of integers; remove the file") from None
        if len(values) != self.width + 1 or sum(values[:-1]) != self.n \
                or values[-1] != self.labels[k]:
            raise CLIError(f"{where} does not continue this run (expected {self.width} counts "
                           f"summing to {self.n} and label {self.labels[k]}); remove the file")

    def open_at(self, rows: int) -> None:
        """Keep the header and the first ``rows`` rows, and append from there."""
        os.ftruncate(self.fd, self.ends[rows] if self.ends else 0)
        self.fh = open(os.dup(self.fd), "a", encoding="utf-8", newline="\n")
        if not self.ends:
            try:
                self.fh.write(self.preamble)
                self.fh.flush()
            except OSError as exc:
                raise CLIError(f"{self.path}: cannot write the header "
                               f"({exc.strerror or exc})") from None

    def write(self, counts, label: int) -> None:
        from topk_bounds.io import format_count_row

        self.write_line(format_count_row(counts, label))

    def write_line(self, line: str) -> None:
        """Append one complete row (newline-terminated) and flush it."""
        try:
            self.fh.write(line)
            self.fh.flush()
        except OSError as exc:
            raise CLIError(f"{self.path}: cannot write a row ({exc.strerror or exc}); the "
                           "complete rows are kept: run the command again to resume") from None

    def close(self) -> None:
        if self.fh is not None:
            fh, self.fh = self.fh, None
            try:
                fh.close()
            except OSError as exc:
                raise CLIError(f"{self.path}: cannot write ({exc.strerror or exc}); run the "
                               "command again to resume") from None


class _AdaptiveRowFile(_RowFile):
    """The file of ``sample --target-radius``: the header, the column names, then one row
    of decisions per input (:mod:`topk_bounds.report.adaptive`)."""

    def __init__(self, path: str, header: str, width: int, labels: list[int],
                 max_n: int) -> None:
        from topk_bounds.report.adaptive import column_line

        super().__init__(path, header, width, labels, max_n)
        self.columns = column_line(width)

    def _check_row(self, k: int, line: bytes) -> None:
        from topk_bounds.report.adaptive import COLUMNS, DECISIONS

        where = f"{self.path} line {k + 3}"
        if k >= len(self.labels):
            raise CLIError(f"{where}: the file has more rows than --inputs has inputs "
                           f"({len(self.labels)})")
        cells = line.decode("utf-8", "replace").split("\t")
        try:
            ok = (len(cells) == len(COLUMNS) + self.width and int(cells[0]) == k
                  and int(cells[1]) == self.labels[k] and cells[3] in DECISIONS
                  and float(cells[4]) == float(cells[4])
                  and sum(int(v) for v in cells[7:]) == int(cells[5]) <= self.n)
        except ValueError:
            ok = False
        if not ok:
            raise CLIError(f"{where} does not continue this run (expected row {k} with label "
                           f"{self.labels[k]} and {self.width} counts summing to its n); "
                           "remove the file")


def _show(value: str | None) -> str:
    return "(none)" if value is None else value[:80]


class _Distributed:
    """Joins torch.distributed under torchrun; picks the device; a no-op otherwise."""

    def __init__(self, torch, device: str | None, timeout: datetime.timedelta) -> None:
        self.torch = torch
        self.timeout = timeout
        self.rank, self.world_size, self.owned, self.failed = 0, 1, False, False
        import torch.distributed as dist

        self.dist = dist
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = _device(torch, device, local_rank)
        initialized = dist.is_available() and dist.is_initialized()
        if not initialized and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            rank = os.environ.get("RANK", "?")
            try:
                dist.init_process_group(backend=backend, timeout=timeout)
            except Exception as exc:
                raise CLIError(
                    f"rank {rank}: torch.distributed did not start within --dist-timeout "
                    f"{timeout.total_seconds():g} s (did every rank start?): "
                    f"{type(exc).__name__}: {_first_line(exc)[:200]}") from None
            self.owned = initialized = True
        if initialized:
            self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        # A process group of our own already times out every collective at ``timeout``
        # (gloo then cancels it, so the process can exit); waiting with a timeout of our
        # own would leave the collective pending. In a group that someone else set up,
        # waiting with the timeout is the best that can be done.
        self.wait_timeout = None if self.owned or self.world_size == 1 else timeout

    def broadcast_start(self, start: int, failure: CLIError | None) -> int:
        """Rank 0's first row to sample, on every rank; rank 0's failure stops them all."""
        if self.world_size == 1:
            if failure is not None:
                raise failure
            return start
        from .collectives import DistributedError, broadcast_int

        try:
            code = broadcast_int(0 if failure is not None else start + 1, 64, self.device,
                                 "the broadcast of the first row", self.wait_timeout)
        except DistributedError as exc:
            self.failed = True
            raise CLIError(f"{exc}; --dist-timeout is {self.timeout.total_seconds():g} s"
                           ) from None
        if failure is not None:
            raise failure
        if code == 0:
            raise CLIError(f"rank {self.rank}: rank 0 could not open the output (it says why)")
        return code - 1

    def close(self) -> None:
        if self.owned and not self.failed:
            self.dist.destroy_process_group()
        elif self.owned:
            # A collective that timed out may still be pending in gloo's threads: tearing
            # the group down then, or letting the interpreter do it at exit, can abort the
            # process (SIGABRT, "terminate called without an active exception") after its
            # one line was printed. Leave at exit without running those destructors.
            atexit.register(_exit_now, 2)
        self.owned = False


def _exit_now(status: int) -> None:
    """Flush what was printed and end the process at once (no C++ destructors run)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def _device(torch, device: str | None, local_rank: int):
    """The torch device to use: valid, able to hold data, and there."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        result = torch.device(device)
    except RuntimeError as exc:
        raise CLIError(f"--device: {device!r} is not a torch device ({_first_line(exc)})"
                       ) from None
    if result.type == "meta":
        raise CLIError(f"--device {device}: meta tensors have no values to sample; use cpu "
                       "or cuda")
    if result.type == "cuda":
        if not torch.cuda.is_available():
            raise CLIError(f"--device {device}: CUDA is not available")
        if result.index is None:
            result = torch.device("cuda", local_rank)
        if result.index >= torch.cuda.device_count():
            raise CLIError(f"--device {device}: there are only {torch.cuda.device_count()} "
                           "CUDA devices")
    try:
        torch.zeros(1, device=result).cpu()
    except Exception as exc:
        raise CLIError(f"--device {device}: cannot be used ({type(exc).__name__}: "
                       f"{_first_line(exc)[:200]})") from None
    return result


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256_weights(model, torch) -> str:
    """sha256 of a module's parameters and buffers: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if not isinstance(tensor, torch.Tensor):
            continue
        data = tensor.detach().cpu()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        try:
            digest.update(data.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        except (RuntimeError, TypeError):  # sparse, quantized, ...: its serialised form
            import io

            buffer = io.BytesIO()
            torch.save(data, buffer)
            digest.update(buffer.getvalue())
    return digest.hexdigest()


def _load_model(spec: str, device, torch):
    """The model on ``device``, the sha256 of its file and the sha256 of its weights."""
    if os.path.isdir(spec):
        raise CLIError(f"--model: {spec!r} is a directory, not a TorchScript file")
    if os.path.isfile(spec):
        file_hash = _sha256_file(spec)
        try:
            model = torch.jit.load(spec, map_location="cpu")
        except Exception as exc:
            raise CLIError(f"--model: cannot load {spec!r} as a TorchScript file "
                           f"({_first_line(exc)})") from None
        return _placed(model, spec, device), file_hash, _sha256_weights(model, torch)
    if not _FACTORY.match(spec):
        raise CLIError(f"--model: {spec!r} is neither a file nor of the form "
                       "package.module:factory")
    module_name, attribute = spec.split(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise CLIError(f"--model: cannot import {module_name!r} ({_first_line(exc)})"
                           ) from None
        raise CLIError(f"--model: importing {module_name!r} failed: "
                       f"{_where(exc)}{type(exc).__name__}: {_first_line(exc)}") from None
    except (Exception, SystemExit) as exc:  # a syntax error, or raising at import
        raise CLIError(f"--model: importing {module_name!r} failed: {_where(exc)}"
                       f"{type(exc).__name__}: {_first_line(exc)}") from None
    source = _module_source(target)
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise CLIError(f"--model: {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise CLIError(f"--model: {spec} is not callable")
    try:
        model = target()
    except (Exception, SystemExit) as exc:
        raise CLIError(f"--model: {spec}() raised {type(exc).__name__}: "
                       f"{_first_line(exc)}") from None
    if not isinstance(model, torch.nn.Module):
        raise CLIError(f"--model: {spec}() returned {type(model).__name__}, "
                       "not a torch.nn.Module")
    return _placed(model, spec, device), source, _sha256_weights(model, torch)


def _placed(model, spec: str, device):
    try:
        return model.to(device)
    except Exception as exc:
        raise CLIError(f"--model: cannot move {spec} to {device}: {type(exc).__name__}: "
                       f"{_first_line(exc)[:200]}") from None


def _module_source(module) -> str:
    """sha256 of a factory module's source file ('none' for a module without one)."""
    try:
        path = inspect.getsourcefile(module) or getattr(module, "__file__", None)
    except TypeError:
        path = None
    if not path or not os.path.isfile(path):
        return "none"
    return _sha256_file(path)


def _where(exc: BaseException) -> str:
    """``file:line: `` of a SyntaxError, or of the innermost frame of a traceback."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}: "
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return ""
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}: "


def _load_data(path: str, torch):
    """The inputs, the labels and the sha256 of the file."""
    if os.path.isdir(path):
        raise CLIError(f"--inputs: {path!r} is a directory, not a .pt file")
    if not os.path.isfile(path):
        raise CLIError(f"--inputs: no such file {path!r}")
    file_hash = _sha256_file(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CLIError(f"--inputs: cannot read {path!r} as a torch file "
                       f"({_first_line(exc)})") from None
    if not isinstance(data, dict) or "inputs" not in data or "labels" not in data:
        got = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise CLIError(f"--inputs: {path} must hold a dict with keys 'inputs' and 'labels', "
                       f"got {got}")
    inputs, labels = data["inputs"], data["labels"]
    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point() \
            or inputs.ndim < 1 or len(inputs) < 1:
        what = (f"{inputs.dtype} tensor of shape {tuple(inputs.shape)}"
                if isinstance(inputs, torch.Tensor) else type(inputs).__name__)
        raise CLIError(f"--inputs: 'inputs' must be a floating-point tensor of shape (N, ...) "
                       f"with N >= 1, got {what}")
    finite = torch.isfinite(inputs.reshape(len(inputs), -1)).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        more = f" ({len(bad) - 1} more too)" if len(bad) > 1 else ""
        raise CLIError(f"--inputs: input {bad[0]} holds NaN or inf{more}; every input must "
                       "be finite")
    try:
        labels = torch.as_tensor(labels)
    except Exception:
        raise CLIError(f"--inputs: 'labels' must be {len(inputs)} integers >= 0, got "
                       f"{type(labels).__name__}") from None
    if labels.ndim != 1 or len(labels) != len(inputs) or labels.is_floating_point() \
            or labels.is_complex() or labels.dtype == torch.bool \
            or (len(labels) and int(labels.min()) < 0):
        raise CLIError(f"--inputs: 'labels' must be {len(inputs)} integers >= 0 (one per "
                       f"input), got {labels.dtype} of shape {tuple(labels.shape)}")
    return inputs, labels, file_hash


def _probe(model, batch, torch) -> int:
    """The model's output width, from one clean input; a failing model is a one-line error."""
    from .core import _evaluating

    try:
        with _evaluating(model), torch.inference_mode():
            logits = model(batch)
    except (Exception, SystemExit) as exc:
        raise CLIError(f"the model failed on the inputs: {type(exc).__name__}: "
                       f"{_first_line(exc)}") from None
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != 1:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise CLIError(f"the model must return logits of shape (batch, classes), got {got} "
                       "for a batch of 1")
    if logits.shape[1] < 1:
        raise CLIError("the model returned logits with no classes (shape (1, 0))")
    return int(logits.shape[1])


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _bar(args, rank: int, total: int, initial: int, start: int, n_rows: int):
    if args.no_progress or rank != 0:
        return None
    from tqdm import tqdm

    bar = tqdm(total=total, initial=initial, unit="sample", unit_scale=True, file=sys.stderr,
               dynamic_ncols=True, desc="sampling", smoothing=0.05)
    bar.set_postfix_str(f"inputs {start}/{n_rows}", refresh=False)
    return bar


class _Scaled:
    """Reports this rank's samples times the world size (ranks draw equal shares)."""

    def __init__(self, bar, factor: int) -> None:
        self.bar, self.factor = bar, factor

    def update(self, k: int) -> None:
        self.bar.update(k * self.factor)
