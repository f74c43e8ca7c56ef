"""The ``topk-bounds report`` subcommand: plots and tables from certify outputs.

Importing this module and calling :func:`configure` is cheap (argparse only); numpy and
the rest load in :func:`run`. Everything is read, certified, checked and rendered
before the first file is written, and all files are then written together or not at all
(:class:`topk_bounds.io.AtomicGroup`). Without matplotlib the tables are still written and
one line on stderr says that plots need the ``plot`` extra.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .. import argtypes
from ..argtypes import CLIError

__all__ = ["configure", "run"]


def _digits(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--digits must be an integer, got {text!r}") from None
    if not 0 <= value <= 12:
        raise argparse.ArgumentTypeError(f"--digits must be in 0..12, got {text!r}")
    return value


def _names_removed(text: str) -> str:
    raise argparse.ArgumentTypeError(
        "--names was replaced by --name, given once per curve (--name A --name B), so that it "
        "cannot swallow the file arguments")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``report`` subcommand's arguments to ``parser``."""
    from .defaults import DEFAULT_GRID

    parser.description = (
        "Plot and tabulate certified accuracy. Give certify outputs (TSV files with a 'radius' "
        "column or 'radius_*' columns), or a count file with --counts/--k/--sigma/--alpha, or "
        "both; and/or one file of 'sample --target-radius' (its adaptive decisions).")
    parser.add_argument("tsv", nargs="*", help="certify, demo or Cohen-format TSV files, or "
                                               "the file of 'sample --target-radius'")
    parser.add_argument("--out", required=True, help="output directory (created if needed)")
    parser.add_argument("--name", action="append", metavar="NAME",
                        help="legend name of a curve; give it once per curve, in order "
                             "(default: from the files' headers, or their names)")
    parser.add_argument("--names", type=_names_removed, help=argparse.SUPPRESS)
    parser.add_argument("--grid", type=argtypes.grid, default=list(DEFAULT_GRID),
                        help="comma-separated radii of the table's columns "
                             "(default: 0,0.25,...,2)")
    parser.add_argument("--digits", type=_digits, default=3,
                        help="decimals in the tables, 0..12 (default: 3)")
    parser.add_argument("--max-radius", type=argtypes.finite_positive("--max-radius"),
                        help="right end of the plot's x axis")
    parser.add_argument("--title", help="title of the plot and the Markdown file")
    parser.add_argument("--cohen", action="store_true",
                        help="also write each curve in Cohen et al.'s format (cohen_<name>.tsv)")
    group = parser.add_argument_group("certify a count file")
    group.add_argument("--counts", metavar="FILE", help="count file to certify")
    group.add_argument("--k", type=argtypes.k_list, default=[1, 2, 3],
                       help="comma-separated top-k sizes, one curve each (default: 1,2,3)")
    group.add_argument("--sigma", type=argtypes.finite_positive("--sigma"),
                       help="noise level the counts were sampled with")
    group.add_argument("--alpha", type=argtypes.probability("--alpha"),
                       help="failure probability of each certificate")
    group.add_argument("--method", choices=("simuem", "binocp", "ranked"), default="simuem",
                       help="probability bounds (default: simuem)")


@dataclass
class _Curve:
    name: str
    radius: object
    labels: object
    predict: object
    source: str


def _describe(meta: dict) -> str | None:
    """``"simuem, sigma=0.25"`` from a certify/radii header, None without one."""
    if meta.get("kind") not in ("certify", "radii"):
        return None
    parts = []
    if meta.get("method"):
        parts.append(meta["method"])
    if meta.get("sigma"):
        try:
            parts.append(f"sigma={float(meta['sigma']):g}")
        except ValueError:
            parts.append(f"sigma={meta['sigma']}")
    return ", ".join(parts) or None


def _curves_of_file(path: str, several: bool) -> list[_Curve]:
    from .files import read_radii_file

    found = read_radii_file(path)
    stem = Path(path).stem
    desc = _describe(found.meta)
    curves = []
    for key, radius in found.radii.items():
        if key == "":
            k = found.meta.get("k") if desc else None
            base = f"top-{k}" if k else stem
        else:
            base = f"{stem}: {key}" if several and not desc else key
        name = f"{base} ({desc})" if desc else base
        curves.append(_Curve(name, radius, found.labels, found.predict, stem))
    return curves


def _certify_counts(path: str, ks: Sequence[int], *, sigma: float, alpha: float, method: str):
    """Radii of every k, the labels and the top-1 prediction (-1 = abstain) of a count file."""
    import numpy as np

    from .. import io
    from ..certify import certify, predict

    from .adaptive import is_adaptive, peek_header

    if is_adaptive(peek_header(path)):  # before its rows, which are not count rows
        raise CLIError(f"--counts {path} was sampled adaptively (header mode=adaptive): "
                       "fixed-n certificates are void under optional stopping; its rows hold "
                       f"the adaptive decisions: give it as a file argument, 'topk-bounds "
                       f"report {path} --out DIR'")
    data = io.read_counts(path)
    io.check_fixed_n(data.meta, path)
    delta = io.sampling_delta(data.meta, path, sigma=sigma)
    radii = {f"top-{k}": certify(data.counts, data.labels, k=k, sigma=sigma, alpha=alpha,
                                 method=method, delta=delta).radius for k in ks}
    pred = predict(data.counts, k=1, alpha=alpha, delta=delta)
    top1 = np.where(pred.abstained, -1, np.asarray(pred.labels)[:, 0])
    return radii, data.labels, top1


def _distinct(curves: list[_Curve]) -> list[str]:
    """Default names; a name two curves share gets each one's file name appended."""
    names = [c.name for c in curves]
    shared = {n for n in names if names.count(n) > 1}
    return [f"{c.name} [{c.source}]" if c.name in shared else c.name for c in curves]


def _cohen_file(name: str) -> str:
    return "cohen_" + (re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "curve") + ".tsv"


def run(args: argparse.Namespace) -> int:
    """Run the ``report`` subcommand; returns the exit status."""
    from .. import io
    from .files import _cohen_text, _emit, _radii_text, report_files
    from .table import certified_accuracy_table

    if not args.tsv and not args.counts:
        raise CLIError("nothing to report: give TSV files and/or --counts FILE")
    if args.counts and (args.sigma is None or args.alpha is None):
        raise CLIError("--counts needs --sigma and --alpha")
    if not args.out:
        raise CLIError("--out is empty; give a directory")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {args.out} exists and is not a directory")

    from .adaptive import is_adaptive, peek_header, read_adaptive_file

    adaptive = [path for path in args.tsv if is_adaptive(peek_header(path))]
    if len(adaptive) > 1:
        raise CLIError(f"give at most one adaptive file (their outputs would share names), got "
                       f"{len(adaptive)}: {', '.join(adaptive)}")
    found = read_adaptive_file(adaptive[0]) if adaptive else None
    radii_files = [path for path in args.tsv if path not in adaptive]
    curves: list[_Curve] = []
    for path in radii_files:
        curves += _curves_of_file(path, several=len(radii_files) > 1)
    computed = None
    if args.counts:
        radii, labels, top1 = _certify_counts(args.counts, args.k, sigma=args.sigma,
                                              alpha=args.alpha, method=args.method)
        computed = (radii, labels, top1)
        curves += [_Curve(name, r, labels, top1, Path(args.counts).stem)
                   for name, r in radii.items()]
    if args.name:
        names = list(args.name)
        if len(names) != len(curves):
            raise CLIError(f"--name is given {len(names)} time(s) for {len(curves)} curve(s) "
                           f"({', '.join(repr(c.name) for c in curves)})")
    else:
        names = _distinct(curves)
    if len(set(names)) != len(names):
        raise CLIError(f"curve names must differ, got {names}; give one --name per curve")
    cohen = {}
    if args.cohen:
        taken: dict[str, str] = {}
        for name, curve in zip(names, curves):
            if curve.labels is None:
                raise CLIError(f"--cohen needs a 'label' column, and the file of curve {name!r} "
                               "has none")
            file = _cohen_file(name)
            if file.casefold() in taken:
                raise CLIError(f"--cohen: curves {taken[file.casefold()]!r} and {name!r} would both "
                               f"be written to {file}; give them --name values that differ in "
                               "letters or digits")
            taken[file.casefold()] = name
            cohen[out / file] = curve

    try:
        import matplotlib  # noqa: F401
        plots = True
    except ImportError:
        plots = False
    table = None
    files: dict = {}
    if curves:
        table = certified_accuracy_table({n: c.radius for n, c in zip(names, curves)}, args.grid)
        files = report_files(table, out, digits=args.digits, title=args.title,
                             max_radius=args.max_radius, plots=plots)
    summary = None
    if found is not None:
        from .adaptive import adaptive_report_files

        adaptive_files = adaptive_report_files(found, out, title=args.title, plots=plots)
        summary = adaptive_files[out / "adaptive.md"]
        files.update(adaptive_files)
    if computed is not None:
        radii, labels, top1 = computed
        # no header line: the file stays byte-identical to the demo's radii.tsv
        files[out / "radii.tsv"] = _radii_text(labels, radii, top1)
    for path, curve in cohen.items():
        files[path] = _cohen_text(curve.labels, curve.radius, predict=curve.predict)
    inputs = [*args.tsv, args.counts]
    for path in files:
        io.check_not_input(path, inputs, option=f"--out {args.out}: the output")

    with io.AtomicGroup() as group:
        written = [_emit(path, content, group) for path, content in files.items()]

    if not plots and sys.stderr is not None:
        print("topk-bounds report: note: plots skipped, they need matplotlib (install "
              "topk-bounds[plot]); the tables were written", file=sys.stderr)
    if sys.stdout is not None:
        if table is not None:
            print(table.to_markdown(args.digits))
        if summary is not None:
            print(("\n" if table is not None else "") + summary, end="")
        for path in written:
            print(f"wrote {path}")
        sys.stdout.flush()
    return 0
