"""Radius files: reading ``certify``/``report``/``demo``/Cohen-format TSVs, and writing them.

Every writer is atomic. Given ``group=`` (an :class:`topk_bounds.io.AtomicGroup`), it adds
its file to the group instead, so that several files appear together or not at all.
"""

from __future__ import annotations

import datetime
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .._atomic import AtomicGroup
from ..io import format_header, is_header, parse_header
from .metrics import _as_radius
from .table import CertifiedAccuracyTable, check_digits

__all__ = ["RadiiFile", "read_radii_file", "read_radii", "write_radii", "write_cohen",
           "write_report", "report_files"]


def _curve_name(column: str) -> str:
    """``radius_top3`` -> ``top-3``; ``radius_foo`` -> ``foo``."""
    suffix = column[len("radius_"):]
    m = re.fullmatch(r"top(\d+)", suffix)
    return f"top-{m.group(1)}" if m else suffix


def _text_lines(path: str | os.PathLike) -> list[str]:
    """The lines of a UTF-8 text file (any line ending), refusing files that are not text."""
    name = os.fsdecode(os.fspath(path))
    with open(path, "rb") as fh:
        data = fh.read()
    if data.startswith(b"\x1f\x8b"):
        raise ValueError(f"{name}: line 1: not a text file: it is gzip-compressed "
                         "(decompress it first, e.g. with gunzip)")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:2]:
        raise ValueError(f"{name}: line 1: not a text file: it is UTF-16 text; convert it to UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise ValueError(f"{name}: line {line}: not a text file: it holds a NUL byte (binary data)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"{name}: line {line}: not a text file: byte 0x{data[exc.start]:02x} "
                         "is not UTF-8 text") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


@dataclass(frozen=True, repr=False)
class RadiiFile:
    """What a radius TSV holds (:func:`read_radii_file`).

    Attributes
    ----------
    radii : dict of str to ndarray of float64
        Curve name to signed radii (keys as for :func:`read_radii`).
    labels, predict : ndarray of int64, or None
        The ``label`` and ``predict`` columns, when the file has them.
    meta : dict of str to str
        The fields of its ``# topk-bounds ...`` header line (``certify`` writes ``k``,
        ``sigma``, ``alpha`` and ``method``); empty when it has none.
    """

    radii: dict
    labels: np.ndarray | None
    predict: np.ndarray | None
    meta: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        n = next(iter(self.radii.values())).size
        return f"RadiiFile(curves={list(self.radii)}, inputs={n}, meta={self.meta})"


def read_radii_file(path: str | os.PathLike) -> RadiiFile:
    """Read the radius column(s), labels, predictions and header of a radius TSV.

    See :func:`read_radii` for the formats understood and the errors raised.
    """
    name = os.fsdecode(os.fspath(path))
    lines = _text_lines(path)
    meta: dict[str, str] = {}
    body = [i for i, line in enumerate(lines) if line.strip() and not line.startswith("#")]
    if not body:
        raise ValueError(f"{name}: the file is empty (expected a header line)")
    for i in range(body[0]):
        if is_header(lines[i]):
            try:
                meta = parse_header(lines[i])
            except ValueError as exc:
                raise ValueError(f"{name}: line {i + 1}: {exc}") from None
            break
    header_at, body = body[0], body[1:]
    header = lines[header_at].split("\t")
    seen: set[str] = set()
    for column in header:
        if column in seen:
            raise ValueError(f"{name}: line {header_at + 1}: the column {column!r} appears twice "
                             "in the header")
        seen.add(column)
    if not body:
        raise ValueError(f"{name}: the file has a header but no rows")
    rows = [lines[i].split("\t") for i in body]
    widths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    ragged = np.flatnonzero(widths != len(header))
    if ragged.size:
        i = int(ragged[0])
        raise ValueError(f"{name}: line {body[i] + 1}: has {widths[i]} fields, the header "
                         f"{len(header)}")
    columns = dict(zip(header, zip(*rows)))
    line_numbers = np.array(body) + 1

    def column(key: str, kind) -> np.ndarray:
        values = columns[key]
        try:
            out = np.fromiter(map(kind, values), dtype=np.int64 if kind is int else np.float64,
                              count=len(values))
        except (ValueError, OverflowError):
            out = None
        bad = None
        if out is None:
            bad = next(j for j, v in enumerate(values) if not _parses(kind, v))
        elif kind is float and np.isnan(out).any():
            bad = int(np.flatnonzero(np.isnan(out))[0])
        if bad is not None:
            what = "an integer" if kind is int else "a number"
            raise ValueError(f"{name}: line {line_numbers[bad]}: {key} {values[bad]!r} is not "
                             f"{what}")
        return out

    multi = [h for h in header if h.startswith("radius_")]
    if "radius" in header and multi:
        raise ValueError(f"{name}: has both a 'radius' column and {', '.join(map(repr, multi))}: "
                         "which to report is ambiguous; keep one kind")
    if "radius" in header:
        keys = {"": "radius"}
    else:
        keys = {}
        for h in multi:
            key = _curve_name(h)
            if key in keys:
                raise ValueError(f"{name}: columns {keys[key]!r} and {h!r} both name the curve "
                                 f"{key!r}")
            keys[key] = h
    if not keys:
        raise ValueError(f"{name}: no 'radius' or 'radius_*' column in the header {header!r}")
    radii = {key: column(col, float) for key, col in keys.items()}
    if "correct" in header and "radius" in header:  # Cohen et al.'s format
        correct = column("correct", int) == 1
        radii[""] = np.where(correct, radii[""], 0.0)
    labels = column("label", int) if "label" in header else None
    predict = column("predict", int) if "predict" in header else None
    return RadiiFile(radii, labels, predict, meta)


def _parses(kind, text: str) -> bool:
    try:
        value = kind(text)
    except (ValueError, OverflowError):
        return False
    return not (isinstance(value, float) and math.isnan(value))


def read_radii(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the radius column(s) of a tab-separated file with a header line.

    Understands the outputs of ``topk-bounds certify`` (one ``radius`` column), of ``report``
    and ``demo`` (``radius_top1``, ``radius_top2``, ... columns) and Cohen et al.'s format
    (``radius`` and ``correct``: a row counts as certified only where ``correct`` is 1).
    Lines starting with ``#`` are skipped (the first ``# topk-bounds`` line among those
    before the column header is the file's header: :func:`read_radii_file`).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    dict of str to ndarray of float64
        Curve name to signed radii. A single ``radius`` column is keyed ``""`` (the caller
        names it); ``radius_topK`` is keyed ``"top-K"``, any other ``radius_X`` ``"X"``.

    Raises
    ------
    ValueError
        Naming the file and line, for a missing header, no radius column, a column named
        twice, both ``radius`` and ``radius_*`` columns, a ragged row, a value that is not a
        number (NaN included), or a file that is not UTF-8 text.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = write_radii(os.path.join(d, "radii.tsv"), [3, 7],
    ...                     {"top-1": [0.25, -1.0], "top-2": [0.5, float("inf")]})
    ...     radii = read_radii(p)
    >>> {name: r.tolist() for name, r in radii.items()}
    {'top-1': [0.25, -1.0], 'top-2': [0.5, inf]}
    """
    return read_radii_file(path).radii


def _emit(path: str | os.PathLike, content: str | bytes, group: AtomicGroup | None) -> Path:
    """Write one file, atomically, or as part of ``group``."""
    if group is not None:
        return (group.write_bytes if isinstance(content, bytes) else group.write_text)(path, content)
    with AtomicGroup() as own:
        return (own.write_bytes if isinstance(content, bytes) else own.write_text)(path, content)


def _radii_text(labels, radii: Mapping[str, Sequence[float]], predict=None,
                header: Mapping[str, object] | None = None) -> str:
    labels = np.asarray(labels)
    columns = [("radius_" + n.replace("-", ""), _as_radius(r, f"radii[{n!r}]"))
               for n, r in radii.items()]
    for col, r in columns:
        if r.size != labels.size:
            raise ValueError(f"{col} has {r.size} values for {labels.size} labels")
    names = ["idx", "label"] + (["predict"] if predict is not None else []) + [c for c, _ in columns]
    cells = [map(str, range(labels.size)), map(str, labels.astype(np.int64).tolist())]
    if predict is not None:
        predict = np.asarray(predict)
        if predict.shape != labels.shape:
            raise ValueError(f"predict has shape {predict.shape} for {labels.size} labels")
        cells.append(map(str, predict.astype(np.int64).tolist()))
    cells += [map(repr, r.tolist()) for _, r in columns]
    top = f"{format_header('radii', header)}\n" if header else ""
    return top + "\t".join(names) + "\n" + "".join(map("{}\n".format, map("\t".join, zip(*cells))))


def write_radii(path: str | os.PathLike, labels, radii: Mapping[str, Sequence[float]],
                predict=None, *, header: Mapping[str, object] | None = None,
                group: AtomicGroup | None = None) -> Path:
    """Write ``idx label [predict] radius_<name> ...`` as tab-separated text, atomically.

    Curve names ``top-K`` become columns ``radius_topK``, so :func:`read_radii` reads the
    file back under the same names. Radii are written exactly (``repr``), ``inf`` included.
    ``predict`` (optional) is one integer per input, -1 for an abstention. ``header``
    (optional): fields of a first ``# topk-bounds radii v1 ...`` line (e.g. sigma, alpha,
    method). ``group``: add the file to an :class:`~topk_bounds.io.AtomicGroup` instead.
    """
    return _emit(path, _radii_text(labels, radii, predict, header), group)


def _timedelta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=seconds))


def _cohen_text(labels, radius, predict=None, times=None) -> str:
    labels = np.asarray(labels)
    r = _as_radius(radius)
    if r.size != labels.size:
        raise ValueError(f"radius has {r.size} values for {labels.size} labels")
    predict = np.full(r.size, -1) if predict is None else np.asarray(predict)
    certified = r > 0
    elapsed = (["0:00:00"] * r.size if times is None
               else list(map(_timedelta, np.asarray(times, dtype=np.float64).tolist())))
    rows = map("{}\t{}\t{}\t{!r}\t{}\t{}\n".format, range(r.size), labels.astype(np.int64).tolist(),
               predict.astype(np.int64).tolist(), np.where(certified, r, 0.0).tolist(),
               certified.view(np.int8).tolist(), elapsed)
    return "idx\tlabel\tpredict\tradius\tcorrect\ttime\n" + "".join(rows)


def write_cohen(path: str | os.PathLike, labels, radius, *, predict=None, times=None,
                group: AtomicGroup | None = None) -> Path:
    """Write Cohen et al.'s certification format, ``idx label predict radius correct time``.

    Their analysis scripts compute certified accuracy at ``r`` as the mean of
    ``correct & (radius >= r)``; this file is written so that the result is exactly
    :func:`certified_accuracy` of the signed radii.

    Parameters
    ----------
    path : str or path-like
        Written atomically (or as part of ``group``).
    labels : array_like of int, shape (N,)
    radius : array_like of float, shape (N,)
        Signed radii of the labels (from :func:`topk_bounds.certify`, any k).
    predict : array_like of int, shape (N,), optional
        The smoothed classifier's top-1 prediction, -1 for an abstention; -1 everywhere
        when not given (Cohen's analysis scripts do not read this column).
    times : array_like of float, optional
        Seconds spent per input, written as ``H:MM:SS.ffffff`` like Cohen's code; 0 by default.
    group : AtomicGroup, optional

    Notes
    -----
    ``correct`` is 1 exactly when the label is certified (``radius > 0``): for k = 1 that is
    Cohen's "prediction is right and not an abstention"; for k > 1 it means "label certified
    in the top-k". Rows that are not certified get radius 0.0 and correct 0, as Cohen's
    abstentions do.
    """
    return _emit(path, _cohen_text(labels, radius, predict, times), group)


def report_files(table: CertifiedAccuracyTable, out_dir: str | os.PathLike, *,
                 stem: str = "certified_accuracy", digits: int = 3, title: str | None = None,
                 max_radius: float | None = None, plots: bool = True) -> dict[Path, str | bytes]:
    """The contents of the files :func:`write_report` writes, path to text or bytes.

    Everything is computed here, before anything is written.
    """
    check_digits(digits)
    out = Path(out_dir)
    files: dict[Path, str | bytes] = {}
    if plots:
        for ext in ("png", "pdf"):
            files[out / f"{stem}.{ext}"] = table.render(ext, max_radius=max_radius, title=title)
    heading = f"# {title}\n\n" if title else ""
    files[out / f"{stem}.md"] = f"{heading}{table.caption()}\n\n{table.to_markdown(digits)}\n"
    files[out / f"{stem}.tex"] = (f"% {table.caption()}\n% Needs \\usepackage{{booktabs}}.\n"
                                  f"{table.to_latex(digits)}\n")
    return files


def write_report(table: CertifiedAccuracyTable, out_dir: str | os.PathLike, *,
                 stem: str = "certified_accuracy", digits: int = 3,
                 title: str | None = None, max_radius: float | None = None,
                 plots: bool = True, group: AtomicGroup | None = None) -> list[Path]:
    """Write ``stem.png``, ``stem.pdf``, ``stem.md`` and ``stem.tex`` into ``out_dir``.

    All of them or none: every file is rendered first (a bad ``digits`` fails before any
    is written), then all are written in one :class:`~topk_bounds.io.AtomicGroup` (or
    added to ``group``). ``plots=False`` writes only the tables; with ``plots=True`` and
    no matplotlib, ``ImportError`` names the ``plot`` extra.
    """
    files = report_files(table, out_dir, stem=stem, digits=digits, title=title,
                         max_radius=max_radius, plots=plots)
    if group is not None:
        return [_emit(path, content, group) for path, content in files.items()]
    with AtomicGroup() as own:
        return [_emit(path, content, own) for path, content in files.items()]
