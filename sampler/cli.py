"""``topk-bounds sample``: write a count file from a torch model, resumably.

::

    topk-bounds sample --model MODEL --inputs DATA --sigma S --n N --batch B --seed SEED
                       --out FILE [--n0 N0] [--device DEV] [--no-progress]
                       [--noise {gaussian,discrete}] [--grid G]

``MODEL`` is a TorchScript file or ``package.module:factory`` (a callable returning a
``torch.nn.Module``; the current directory is importable). ``DATA`` is a ``.pt`` file
holding a dict with ``inputs`` (N, ...) and ``labels`` (N,).

The output
----------
``FILE`` starts with one ``#`` line that records what determines the rows (model, data,
sigma, n, seed, device type, classes, rows, noise; with ``--noise discrete`` also the grid
and the total-variation ``delta`` that ``certify`` must allow for), then holds one row per
input: the ``n``-sample counts, then the label (:func:`topk_bounds.io.format_count_row`),
the format that ``topk-bounds certify`` reads. Rows are written in order and flushed one by one.

With ``--n0``, the selection stage of Cohen et al.'s two-stage procedure is sampled too,
from a separate random stream, and written to ``FILE.n0`` in the same format (rows sum to
``n0``). ``FILE`` is unchanged by ``--n0``: its rows are the estimation counts, exactly those
of a run without it, so ``certify`` consumes it as usual and the selection never shares a
sample with the estimation.

Resuming
--------
Every row depends only on the ``#`` line's fields and the row number (see
:mod:`sampler.streams`), not on ``--batch`` or on the number of ranks. Killed at any moment
and started again with the same arguments, the command keeps every complete row, drops a
torn last line, continues, and ends with exactly the file an uninterrupted run writes. A
file whose ``#`` line differs from this run's is an error, never overwritten.

Distributed
-----------
Under ``torchrun`` (``WORLD_SIZE > 1``) the command initialises ``torch.distributed``
(nccl on CUDA, gloo on CPU), every rank samples a share of each input, and rank 0 writes
the same file a single process writes::

    torchrun --nproc_per_node 2 -m topk_bounds.cli -- sample --model ... --n 100000 ...

(the ``--`` keeps torchrun from reading ``--n`` as an abbreviation of its own options).

This module imports torch only inside :func:`run`, so the other subcommands stay torch-free.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from typing import Any

from topk_bounds.argtypes import CLIError, finite_positive, non_negative_int, positive_int

__all__ = ["configure", "run"]

_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``sample`` arguments to ``parser``."""
    parser.add_argument("--model", required=True,
                        help="TorchScript file, or package.module:factory (a callable "
                             "returning a torch.nn.Module)")
    parser.add_argument("--inputs", required=True,
                        help=".pt file holding a dict with 'inputs' (N, ...) and 'labels' (N,)")
    parser.add_argument("--sigma", type=finite_positive("--sigma"), required=True,
                        help="standard deviation of the Gaussian noise")
    parser.add_argument("--n", type=positive_int("--n"), required=True,
                        help="estimation samples per input (the counts in FILE)")
    parser.add_argument("--batch", type=positive_int("--batch"), required=True,
                        help="noisy samples per forward pass (does not change the counts)")
    parser.add_argument("--seed", type=non_negative_int("--seed"), required=True, help="random seed, >= 0")
    parser.add_argument("--out", required=True,
                        help="count file to write, or to resume if it exists")
    parser.add_argument("--n0", type=positive_int("--n0"),
                        help="also draw N0 selection samples per input (separate stream) "
                             "and write their counts to FILE.n0")
    parser.add_argument("--device", default=None,
                        help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--no-progress", action="store_true",
                        help="do not show the progress bar on stderr")
    parser.add_argument("--noise", choices=("gaussian", "discrete"), default="gaussian",
                        help="float Gaussian noise (default), or exact discrete Gaussian "
                             "offsets for inputs on the grid i / G (sound in floats; the "
                             "header records its total-variation delta)")
    parser.add_argument("--grid", type=positive_int("--grid"), default=None,
                        help="with --noise discrete: the inputs' grid G (default 255, "
                             "8-bit images in [0, 1])")


def run(args: argparse.Namespace) -> int:
    """Sample every input of ``args.inputs`` and write (or finish) ``args.out``."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - the parser already reports this
        raise CLIError(f"'sample' needs torch ({exc}); install topk-bounds[torch]") from None

    from .core import ModelError, sample_counts
    from .two_stage import two_stage_counts

    data_inputs, labels = _load_data(args.inputs, torch)
    noise = _noise(args, data_inputs)
    session = _Distributed(torch, args.device)
    try:
        device = session.device
        model = _load_model(args.model, device, torch)
        width = _probe(model, data_inputs[:1].to(device), torch)
        if int(labels.max()) >= width:
            raise CLIError(f"--inputs: label {int(labels.max())} is outside 0..{width - 1} "
                           f"(the model has {width} outputs)")
        n_rows = len(labels)
        label_list = [int(v) for v in labels.tolist()]
        fields = dict(model=args.model, inputs=args.inputs, sigma=repr(args.sigma),
                      seed=args.seed, device=device.type, classes=width, rows=n_rows,
                      **noise.header_fields(int(data_inputs[0].numel())))
        files = []
        if session.rank == 0:
            if args.n0 is not None:
                files.append(_RowFile(args.out + ".n0", _header(fields, "selection", args.n0),
                                      width, label_list, args.n0))
            files.append(_RowFile(args.out, _header(fields, "estimation", args.n),
                                  width, label_list, args.n))
            start = min(f.complete_rows() for f in files)
            for f in files:
                f.open_at(start)
        else:
            start = 0
        start = session.broadcast(start)

        per_sample = args.n + (args.n0 or 0)
        bar = _bar(args, session.rank, n_rows * per_sample, start * per_sample, start, n_rows)
        progress = _Scaled(bar, session.world_size) if bar is not None else False
        per_call = max(1, (8 * args.batch) // args.n)
        common = dict(sigma=args.sigma, batch_size=args.batch, num_classes=width,
                      seed=args.seed, device=device, progress=progress,
                      noise=args.noise, grid=args.grid)
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
                    raise CLIError(str(exc)) from exc
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


def _header(fields: dict[str, Any], stage: str, n: int) -> str:
    size = "n" if stage == "estimation" else "n0"
    items = " ".join(f"{key}={value}" for key, value in fields.items())
    return f"# topk-bounds sample v1 stage={stage} {size}={n} {items}"


class _RowFile:
    """A count file written row by row; opening it resumes after its last complete row."""

    def __init__(self, path: str, header: str, width: int, labels: list[int], n: int) -> None:
        self.path = path
        self.header = header
        self.width = width
        self.labels = labels
        self.n = n
        self.ends: list[int] = []  # byte offset after the header and after each row
        self.fh = None

    def complete_rows(self) -> int:
        """Check the existing file and count its complete rows (0 if absent or torn)."""
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return 0
        complete = data[:data.rfind(b"\n") + 1]  # a torn last line is dropped
        if not complete:
            if not (self.header + "\n").encode("utf-8").startswith(data):
                raise CLIError(f"{self.path} exists and is not a count file of this run; "
                               "remove it or choose another --out")
            return 0
        data = complete
        lines = data.split(b"\n")[:-1]
        first = lines[0].decode("utf-8", "replace")
        if first != self.header:
            raise CLIError(f"{self.path} was written by a different run "
                           f"({_difference(first, self.header)}); remove it or choose "
                           "another --out")
        offset = len(lines[0]) + 1
        self.ends = [offset]
        for k, line in enumerate(lines[1:]):
            self._check_row(k, line)
            offset += len(line) + 1
            self.ends.append(offset)
        return len(self.ends) - 1

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
        if not self.ends:
            with open(self.path, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(self.header + "\n")
        else:
            with open(self.path, "r+b") as fh:
                fh.truncate(self.ends[rows])
        self.fh = open(self.path, "a", encoding="utf-8", newline="\n")

    def write(self, counts, label: int) -> None:
        from topk_bounds.io import format_count_row

        self.fh.write(format_count_row(counts, label))
        self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


class _Distributed:
    """Joins torch.distributed under torchrun; picks the device; a no-op otherwise."""

    def __init__(self, torch, device: str | None) -> None:
        self.torch = torch
        self.rank, self.world_size, self.owned = 0, 1, False
        import torch.distributed as dist

        self.dist = dist
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(device)
        except RuntimeError as exc:
            raise CLIError(f"--device: {device!r} is not a torch device ({exc})") from None
        if self.device.type == "cuda":
            if not torch.cuda.is_available():
                raise CLIError(f"--device {device}: CUDA is not available")
            if self.device.index is None:
                self.device = torch.device("cuda", local_rank)
        initialized = dist.is_available() and dist.is_initialized()
        if not initialized and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend=backend)
            self.owned = initialized = True
        if initialized:
            self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def broadcast(self, value: int) -> int:
        if self.world_size == 1:
            return value
        box = [value]
        self.dist.broadcast_object_list(box, src=0)
        return int(box[0])

    def close(self) -> None:
        if self.owned:
            self.dist.destroy_process_group()


def _load_model(spec: str, device, torch):
    if os.path.isfile(spec):
        try:
            return torch.jit.load(spec, map_location=device)
        except Exception as exc:
            raise CLIError(f"--model: cannot load {spec!r} as a TorchScript file "
                           f"({_first_line(exc)})") from None
    if not _FACTORY.match(spec):
        raise CLIError(f"--model: {spec!r} is neither a file nor of the form "
                       "package.module:factory")
    module_name, attribute = spec.split(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CLIError(f"--model: cannot import {module_name!r} ({_first_line(exc)})") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise CLIError(f"--model: {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise CLIError(f"--model: {spec} is not callable")
    try:
        model = target()
    except Exception as exc:
        raise CLIError(f"--model: {spec}() raised {_first_line(exc)}") from None
    if not isinstance(model, torch.nn.Module):
        raise CLIError(f"--model: {spec}() returned {type(model).__name__}, "
                       "not a torch.nn.Module")
    return model.to(device)


def _load_data(path: str, torch):
    if not os.path.isfile(path):
        raise CLIError(f"--inputs: no such file {path!r}")
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
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or len(labels) != len(inputs) or labels.is_floating_point() \
            or labels.dtype == torch.bool or (len(labels) and int(labels.min()) < 0):
        raise CLIError(f"--inputs: 'labels' must be {len(inputs)} integers >= 0 (one per "
                       f"input), got {labels.dtype} of shape {tuple(labels.shape)}")
    return inputs, labels


def _probe(model, batch, torch) -> int:
    """The model's output width, from one clean input; a failing model is a one-line error."""
    from .core import _evaluating

    try:
        with _evaluating(model), torch.inference_mode():
            logits = model(batch)
    except Exception as exc:
        raise CLIError(f"the model failed on the inputs: {type(exc).__name__}: "
                       f"{_first_line(exc)}") from None
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != 1:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise CLIError(f"the model must return logits of shape (batch, classes), got {got} "
                       "for a batch of 1")
    return int(logits.shape[1])


def _difference(found: str, wanted: str) -> str:
    """What differs between a file's ``#`` line and this run's, for the error message."""
    a, b = found.split(" "), wanted.split(" ")
    if len(a) == len(b) and a[:4] == b[:4]:
        pairs = [(x, y) for x, y in zip(a, b) if x != y]
        return "; ".join(f"it has {x}, this run {y}" for x, y in pairs)
    return f"its first line is {found[:200]!r}"


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
