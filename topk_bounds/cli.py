"""The ``topk-bounds`` command line.

Subcommands
-----------
certify  radii for every row of a count file (this module; needs only the core).
report   plots and tables from certify outputs (:mod:`topk_bounds.report`).
sample   counts from a torch model (:mod:`sampler.cli`; needs the ``torch`` extra).
demo     the end-to-end example on scikit-learn's digits (:mod:`sampler.demo`).

Every failure the user can cause ends with one line on stderr and a non-zero exit status,
never a traceback. Subcommand modules signal such failures by raising :class:`CLIError`
(or ``ValueError`` / ``OSError``); :func:`main` turns them into that line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Sequence

from . import argtypes
from .argtypes import CLIError

__all__ = ["CLIError", "main"]

PROG = "topk-bounds"


# Subcommands that live outside this module: name -> (module, help). Each module defines
# ``configure(parser)`` and ``run(args) -> int``, and must not import torch at import time.
_EXTERNAL = {
    "report": ("topk_bounds.report", "plots and tables of certified accuracy from certify outputs"),
    "sample": ("sampler.cli", "sample counts from a torch model (needs the torch extra)"),
    "demo": ("sampler.demo", "train, sample and certify on scikit-learn's digits, end to end"),
}


def _configure_certify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="count file: counts per row, label in the last column")
    parser.add_argument("--k", type=argtypes.positive_int("--k"), required=True, help="top-k size")
    parser.add_argument("--sigma", type=argtypes.finite_positive("--sigma"), required=True,
                        help="noise level the counts were sampled with")
    parser.add_argument("--alpha", type=argtypes.probability("--alpha"), required=True,
                        help="total failure probability of the certificates")
    parser.add_argument("--method", choices=("simuem", "binocp", "ranked"), default="simuem",
                        help="how the probability bounds are estimated (default: simuem)")
    parser.add_argument("--out", help="write the table here (atomically) instead of stdout")
    parser.add_argument("--grid", type=argtypes.grid, default=[0.0, 0.25, 0.5, 0.75, 1.0],
                        help="comma-separated radii for the summary on stderr")


def _run_certify(args: argparse.Namespace) -> int:
    from .certify import certify
    from .report import certified_accuracy
    from .io import atomic_write, read_counts

    grid = args.grid
    data = read_counts(args.file)
    result = certify(data.counts, data.labels, k=args.k, sigma=args.sigma,
                     alpha=args.alpha, method=args.method)
    header = "idx\tlabel\tradius\tcertified\tp_lower\n"

    def write(fh) -> None:
        fh.write(header)
        for i in range(len(data.labels)):
            fh.write(f"{i}\t{data.labels[i]}\t{float(result.radius[i])!r}\t{int(result.certified[i])}"
                     f"\t{float(result.p_lower[i])!r}\n")

    if args.out:
        with atomic_write(args.out) as fh:
            write(fh)
    else:
        write(sys.stdout)
        sys.stdout.flush()
    acc = certified_accuracy(result.radius, grid)
    summary = "  ".join(f"r={r:g}: {a:.3f}" for r, a in zip(grid, acc))
    print(f"certified top-{args.k} accuracy ({len(data.labels)} inputs, {args.method}, "
          f"sigma={args.sigma:g}, alpha={args.alpha:g}): {summary}", file=sys.stderr)
    if args.out:
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in the same one-line form as everything else."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Certified top-k robustness radii for randomized smoothing.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    certify_parser = sub.add_parser("certify", help="certified top-k radii for a count file")
    _configure_certify(certify_parser)
    certify_parser.set_defaults(run=_run_certify)
    for name, (module, help_text) in _EXTERNAL.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(run=_lazy_run(module))
        try:
            importlib.import_module(module).configure(p)
        except ImportError as exc:  # an optional extra is missing: say so when it is used
            p.set_defaults(run=_missing(name, exc))
            p.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _lazy_run(module: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return importlib.import_module(module).run(args)

    return run


def _missing(name: str, exc: ImportError) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise CLIError(f"'{name}' needs an optional dependency that is not installed ({exc}); "
                       "install topk-bounds[demo] or [torch]")

    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``topk-bounds`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, OSError) as exc:
        message = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
            message = f"{exc.filename}: {exc.strerror}"
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
