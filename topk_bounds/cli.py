"""The ``topk-bounds`` command line.

Subcommands
-----------
certify  radii for every row of a count file (this module; needs only the core).
report   plots and tables from certify outputs (:mod:`topk_bounds.report.command`).
sample   counts from a torch model (:mod:`sampler.cli`; needs the ``torch`` extra).
demo     the end-to-end example on scikit-learn's digits (:mod:`sampler.demo`).

Every failure the user can cause ends with one line on stderr and a non-zero exit status,
never a traceback. Subcommand modules signal such failures by raising :class:`CLIError`
(or ``ValueError`` / ``OSError``); :func:`main` turns them into that line.

Start-up is cheap on purpose: this module imports nothing heavy, :func:`main` installs its
signal handlers first (Ctrl-C exits 130, SIGTERM 143, SIGHUP 129, each with one line, and
the atomic writers remove their temporary files), and only then imports the one subcommand
module that the command line names, and numpy and scipy with it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
from typing import Callable, Iterator, Sequence

from . import __version__, argtypes
from .argtypes import CLIError

__all__ = ["CLIError", "Terminated", "main", "build_parser"]

PROG = "topk-bounds"

# name -> (module with configure(parser) and run(args) -> int, one-line help, description).
# The modules must not import torch (or anything heavy) at import time.
_SUBCOMMANDS = {
    "certify": ("topk_bounds.cli", "certified top-k radii for a count file",
                "Certified top-k radii (Jia et al., ICLR 2020) for every row of a count file, "
                "written as a tab-separated table; a summary of certified accuracy goes to "
                "stderr."),
    "report": ("topk_bounds.report.command",
               "plots and tables of certified accuracy from certify outputs",
               "Plot and tabulate certified accuracy."),
    "sample": ("sampler.cli", "sample counts from a torch model (needs the torch extra)",
               "Sample the counts of a torch model's predictions under Gaussian noise and "
               "write them as a count file, resumably (needs the torch extra)."),
    "demo": ("sampler.demo", "train, sample and certify on scikit-learn's digits, end to end",
             "Train, sample, certify and report on scikit-learn's digits, end to end "
             "(needs the demo extra)."),
}


class Terminated(BaseException):
    """Raised by the CLI's handler for SIGTERM and SIGHUP (a ``BaseException``, like
    ``KeyboardInterrupt``, so that no ``except Exception`` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


# -- certify ----------------------------------------------------------------------------------

def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``certify`` subcommand's arguments to ``parser``."""
    parser.add_argument("file", help="count file: counts per row, label in the last column "
                                     "(text, or a .npy array of shape (N, c + 1))")
    parser.add_argument("--k", type=argtypes.positive_int("--k"), required=True, help="top-k size")
    parser.add_argument("--sigma", type=argtypes.finite_positive("--sigma"), required=True,
                        help="noise level the counts were sampled with")
    parser.add_argument("--alpha", type=argtypes.probability("--alpha"), required=True,
                        help="total failure probability of the certificates")
    parser.add_argument("--method", choices=("simuem", "binocp", "ranked"), default="simuem",
                        help="how the probability bounds are estimated (default: simuem)")
    parser.add_argument("--out", help="write the table to this file (atomically) instead of "
                                      "stdout")
    parser.add_argument("--delta", type=argtypes.slack("--delta"), default=None,
                        help="the sampler's total-variation distance per sample, for a file "
                             "whose header does not record it (e.g. a .npy array of "
                             "discrete-noise counts); every bound is widened by it")
    parser.add_argument("--grid", type=argtypes.grid, default=[0.0, 0.25, 0.5, 0.75, 1.0],
                        help="comma-separated radii for the summary on stderr")


class _Summary:
    """Certified accuracy on a grid, accumulated exactly (as integer counts) over chunks.

    The same definition as :func:`topk_bounds.report.certified_accuracy`: an input counts
    at ``r`` when ``radius > 0`` and ``radius >= r``.
    """

    def __init__(self, grid: Sequence[float]) -> None:
        import numpy as np

        self.grid = np.asarray(grid, dtype=np.float64)
        self.hits = np.zeros(self.grid.size, dtype=np.int64)
        self.total = 0

    def add(self, radius) -> None:
        import numpy as np

        certified = np.sort(radius[radius > 0])
        self.hits += certified.size - np.searchsorted(certified, self.grid, side="left")
        self.total += radius.size

    def accuracy(self):
        return self.hits / self.total


def _format_rows(start: int, labels, radius, p_lower) -> str:
    """The table rows of one chunk; radii and bounds as ``repr`` (exact round trip)."""
    certified = (radius > 0).view("int8").tolist()
    return "".join(map("{}\t{}\t{!r}\t{}\t{!r}\n".format, range(start, start + labels.size),
                       labels.tolist(), radius.tolist(), certified, p_lower.tolist()))


@contextlib.contextmanager
def _spool() -> Iterator:
    """A temporary file for the table when it goes to stdout: nothing reaches stdout
    unless every row was certified (a bad row on line 40,000 leaves stdout empty)."""
    import errno
    import tempfile

    try:
        with tempfile.TemporaryFile("w+", encoding="utf-8") as fh:
            yield fh
    except OSError as exc:  # a full temporary directory: say which
        if exc.filename is None and exc.errno in (errno.ENOSPC, errno.EFBIG,
                                                  getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise OSError(exc.errno, exc.strerror,
                          f"temporary file in {tempfile.gettempdir()}") from None
        raise


def run(args: argparse.Namespace) -> int:
    """Run the ``certify`` subcommand; returns the exit status."""
    from . import io
    from .bounds import _cache_bounds
    from .certify import certify

    out = args.out
    if out is None and sys.stdout is None:
        raise CLIError("stdout is closed; give --out FILE to write the table to a file")
    if out is not None:
        io.check_output_path(out)
        io.check_not_input(out, [args.file])
    summary = _Summary(args.grid)
    header = io.format_header("certify", {"k": args.k, "sigma": repr(args.sigma),
                                          "alpha": repr(args.alpha), "method": args.method,
                                          "counts": args.file, "topk_bounds": __version__})
    with io.iter_counts(args.file) as reader:
        io.check_fixed_n(reader.meta, args.file)
        delta = io.sampling_delta(reader.meta, args.file, sigma=args.sigma, delta=args.delta)
        if delta:
            header += f" delta={delta!r}"
        # the bounds of counts seen in earlier chunks are reused (the same values)
        with (io.atomic_write(out) if out is not None else _spool()) as fh, _cache_bounds():
            fh.write(f"{header}\nidx\tlabel\tradius\tcertified\tp_lower\n")
            for chunk in reader:
                if summary.total == 0 and args.k >= chunk.counts.shape[1]:
                    _say(f"warning: --k {args.k} >= the number of labels c = "
                         f"{chunk.counts.shape[1]}: every label is in the top k, so every "
                         "radius is inf")
                result = certify(chunk.counts, chunk.labels, k=args.k, sigma=args.sigma,
                                 alpha=args.alpha, method=args.method, delta=delta)
                fh.write(_format_rows(summary.total, chunk.labels, result.radius,
                                      result.p_lower))
                summary.add(result.radius)
            if out is None:
                fh.seek(0)
                _copy_to_stdout(fh)
    shown = "  ".join(f"r={r:g}: {a:.3f}" for r, a in zip(args.grid, summary.accuracy()))
    slack = f", delta={delta:.3g}" if delta else ""
    _say(f"certified top-{args.k} accuracy ({summary.total} inputs, {args.method}, "
         f"sigma={args.sigma:g}, alpha={args.alpha:g}{slack}): {shown}", prefix=False)
    if out is not None:
        _say(f"wrote {out}", prefix=False)
    return 0


def _copy_to_stdout(fh) -> None:
    import shutil

    try:
        shutil.copyfileobj(fh, sys.stdout, 1 << 20)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, "<stdout>") from None
        raise


def _say(message: str, *, prefix: bool = True, command: str = "certify") -> None:
    """One line on stderr, by default as ``topk-bounds certify: message``."""
    _line(f"{PROG} {command}: {message}" if prefix else message)


# -- the parser -------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in the same one-line form as everything else."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _configure(parser: argparse.ArgumentParser, name: str) -> None:
    module_name = _SUBCOMMANDS[name][0]
    try:
        # certify lives here; under ``python -m`` this module is __main__, not a second copy
        module = (sys.modules[__name__] if module_name == "topk_bounds.cli"
                  else importlib.import_module(module_name))
    except ImportError as exc:  # an optional extra is missing: say so when it is used
        parser.set_defaults(run=_missing(name, exc))
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return
    module.configure(parser)
    parser.set_defaults(run=module.run)


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``topk-bounds`` parser.

    ``commands``: the subcommands whose arguments to set up (their modules are imported);
    all of them by default. :func:`main` sets up only the one it runs, so that start-up
    does not import the others (nor numpy, for ``--help``).
    """
    parser = _Parser(prog=PROG, description="Certified top-k robustness radii for randomized "
                                            "smoothing (Jia et al., ICLR 2020).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser,
                                title="commands")
    wanted = _SUBCOMMANDS if commands is None else commands
    for name, (_, help_text, description) in _SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=description)
        if name in wanted:
            _configure(p, name)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand an argument list names: its first word that is not an option."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in _SUBCOMMANDS else None
    return None


def _missing(name: str, exc: ImportError) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise CLIError(f"'{name}' needs an optional dependency that is not installed ({exc}); "
                       "install topk-bounds[demo] or [torch]")

    return run


# -- signals, stdout, and main ----------------------------------------------------------------

def _raise_for_signal(signum, frame) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise (so ``finally`` blocks and cleanup run); restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = [s for s in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, s)]
    previous = {}
    try:
        for name in names:
            signum = getattr(signal, name)
            previous[signum] = signal.signal(signum, _raise_for_signal)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail again."""
    with contextlib.suppress(Exception):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``topk-bounds`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_in(argv)
    where = f"{PROG} {command}" if command else PROG
    with _signals_raise():
        try:
            parser = build_parser([command] if command else [])
            if not argv:
                parser.print_help(sys.stderr)
                return 2
            args = parser.parse_args(argv)
            if args.command is None:
                parser.print_help(sys.stderr)
                return 2
            return int(args.run(args) or 0)
        except KeyboardInterrupt:
            _line(f"{where}: interrupted")
            return 130
        except Terminated as exc:
            name = signal.Signals(exc.signum).name
            _line(f"{where}: terminated by {name}")
            return 128 + exc.signum
        except BrokenPipeError:  # the reader went away (| head): stop quietly
            _silence_stdout()
            return 141
        except (CLIError, ValueError, OSError) as exc:
            message = str(exc) or type(exc).__name__
            if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
                message = f"{exc.filename}: {exc.strerror}"
                if exc.filename == "<stdout>":
                    _silence_stdout()
            _line(f"{where}: error: {message}")
            return 2


def _line(text: str) -> None:
    if sys.stderr is not None:
        with contextlib.suppress(OSError):
            print(text.replace("\n", " "), file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
