"""Certified accuracy: the numbers, tables and plots that summarize a set of radii.

Conventions (those of Cohen et al. 2019 and Jia et al. 2020):

- A radius is *signed*, as :func:`topk_bounds.certify` returns it: ``radius > 0`` means the
  input's label is certified (in the top-k) within that L2 radius; ``radius <= 0`` means it is
  not certified at all.
- The certified accuracy at ``r`` is the fraction of inputs whose label is certified with a
  radius ``>= r``. An input that is not certified is a miss at every ``r``, ``r = 0`` included;
  it never counts as "certified with radius 0".
- The average certified radius (ACR) is the mean over *all* inputs of ``max(radius, 0)``:
  inputs that are not certified contribute 0. It equals the area under the certified-accuracy
  curve.

The ``report`` subcommand turns ``certify`` outputs (or a count file) into a plot with one curve
per k, Markdown and LaTeX tables with the best value per radius in bold, and optionally
Cohen et al.'s tab-separated format. Nothing here imports matplotlib until a plot is drawn.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import argtypes
from .io import atomic_write

__all__ = [
    "DEFAULT_GRID",
    "certified_accuracy",
    "average_certified_radius",
    "CertifiedAccuracyTable",
    "certified_accuracy_table",
    "read_radii",
    "write_radii",
    "write_cohen",
    "write_report",
    "configure",
    "run",
]

#: Radii at which the tables report certified accuracy unless told otherwise.
DEFAULT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


def _as_radius(radius, name: str = "radius") -> np.ndarray:
    """A 1-d float64 copy of ``radius``, rejecting empty input and NaN."""
    r = np.asarray(radius, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {r.shape}")
    if r.size == 0:
        raise ValueError(f"{name} is empty: certified accuracy needs at least one input")
    bad = np.flatnonzero(np.isnan(r))
    if bad.size:
        raise ValueError(f"{name}[{bad[0]}] is NaN; a radius must be a number (or +-inf)")
    return r


def _as_grid(radii_grid) -> np.ndarray:
    grid = np.asarray(radii_grid, dtype=np.float64)
    if grid.ndim > 1:
        raise ValueError(f"radii_grid must be a number or 1-dimensional, got shape {grid.shape}")
    bad = grid[np.isnan(grid) | (grid < 0)]
    if bad.size:
        raise ValueError(f"radii_grid must hold radii >= 0, got {bad[0]!r}")
    return grid


def certified_accuracy(radius, radii_grid) -> np.ndarray:
    """Fraction of inputs certified with a radius of at least ``r``, for each ``r`` in a grid.

    Parameters
    ----------
    radius : array_like of float, shape (N,)
        Signed radii, one per input, as returned by :func:`topk_bounds.certify`: ``> 0`` is
        certified, ``<= 0`` is not; ``+inf`` is allowed.
    radii_grid : float or array_like of float, shape (M,)
        Radii ``r >= 0`` (``+inf`` allowed) at which to evaluate.

    Returns
    -------
    ndarray of float64, same shape as ``radii_grid``
        ``mean(radius > 0 and radius >= r)`` for each ``r``. Non-increasing in ``r``.

    Raises
    ------
    ValueError
        If ``radius`` is empty, not 1-dimensional or holds NaN, or a grid value is negative or NaN.

    Notes
    -----
    An input that is not certified is a miss at every radius, ``r = 0`` included: the value
    at ``r = 0`` is the fraction certified at all, not the fraction with ``radius >= 0``.

    Examples
    --------
    Four inputs: two certified (0.5 and 1.2), one not (-0.3), and one whose bounds give
    exactly 0, which is not a certificate either.

    >>> certified_accuracy([0.5, 1.2, -0.3, 0.0], [0, 0.5, 1.0, 2.0])
    array([0.5 , 0.5 , 0.25, 0.  ])
    >>> float(certified_accuracy([0.5, 1.2, -0.3, 0.0], 0.75))
    0.25
    """
    r = _as_radius(radius)
    grid = _as_grid(radii_grid)
    certified = np.sort(r[r > 0])
    # Number of certified radii >= g is len - (number strictly below g).
    at_least = certified.size - np.searchsorted(certified, grid, side="left")
    return at_least / r.size


def average_certified_radius(radius) -> float:
    """Mean over all inputs of ``max(radius, 0)``: inputs that are not certified count as 0.

    Parameters
    ----------
    radius : array_like of float, shape (N,)
        Signed radii, as for :func:`certified_accuracy`.

    Returns
    -------
    float
        The average certified radius (ACR, Zhai et al. 2020); ``inf`` if any radius is ``+inf``
        (k >= number of labels).

    Notes
    -----
    The ACR is the area under the certified-accuracy curve:
    ``mean(max(R, 0)) = integral over r >= 0 of mean(R > 0 and R >= r) dr``.

    Examples
    --------
    >>> average_certified_radius([0.5, 1.2, -0.3, 0.0])
    0.425
    """
    r = _as_radius(radius)
    return float(np.mean(np.maximum(r, 0.0)))


def _curve(radius: np.ndarray, x_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact step curve of certified accuracy on [0, x_max], for ``step(where="pre")``.

    On (x[i-1], x[i]] the accuracy is y[i]: it only drops just after a certified radius.
    """
    certified = np.sort(radius[radius > 0])
    knots = np.unique(certified[certified < x_max])
    x = np.concatenate(([0.0], knots, [x_max]))
    at_least = certified.size - np.searchsorted(certified, x, side="left")
    return x, at_least / radius.size


@dataclass(frozen=True, repr=False, eq=False)
class CertifiedAccuracyTable:
    """Certified accuracy of several curves (one per k, or per method) on one grid of radii.

    Build it with :func:`certified_accuracy_table`.

    Attributes
    ----------
    names : tuple of str
        One name per curve, e.g. ``("top-1", "top-3")``.
    grid : ndarray of float64, shape (M,)
        The radii of the table's columns.
    accuracy : ndarray of float64, shape (len(names), M)
        ``accuracy[i, j]`` is the certified accuracy of curve ``i`` at ``grid[j]``.
    acr : ndarray of float64, shape (len(names),)
        The average certified radius of each curve.
    num_inputs : tuple of int
        How many inputs each curve was computed from.
    radii : tuple of ndarray
        The signed radii of each curve (for the plot).
    """

    names: tuple[str, ...]
    grid: np.ndarray
    accuracy: np.ndarray
    acr: np.ndarray
    num_inputs: tuple[int, ...]
    radii: tuple[np.ndarray, ...]

    def __repr__(self) -> str:
        return (f"CertifiedAccuracyTable(names={list(self.names)}, "
                f"grid={[float(g) for g in self.grid]}, num_inputs={list(self.num_inputs)})")

    def __str__(self) -> str:
        return self.to_markdown()

    # -- tables ---------------------------------------------------------------------------
    def _cells(self, digits: int) -> tuple[list[list[str]], list[list[bool]]]:
        """Formatted values (accuracy columns, then ACR) and which of them to mark as best.

        The best is decided on the values as printed, so every row that shows the best value
        is marked; a column where every row shows the same value marks nothing.
        """
        if not (isinstance(digits, int) and 0 <= digits <= 12):
            raise ValueError(f"digits must be an integer in 0..12, got {digits!r}")
        values = np.column_stack([self.accuracy, self.acr])
        shown = [[_fmt(v, digits) for v in row] for row in values]
        rounded = np.array([[float(v) for v in row] for row in shown])  # as printed
        best = np.zeros(values.shape, dtype=bool)
        for j in range(values.shape[1]):
            col = rounded[:, j]
            if len(self.names) > 1 and not np.all(col == col[0]):
                best[:, j] = col == col.max()
        return shown, best.tolist()

    def _header(self) -> list[str]:
        return [f"r = {g:g}" for g in self.grid] + ["ACR"]

    def to_markdown(self, digits: int = 3) -> str:
        """A GitHub-flavoured Markdown table: one row per curve, one column per radius, then ACR.

        The best value of each column is in bold (all rows that tie for it).

        Examples
        --------
        >>> t = certified_accuracy_table({"top-1": [0.5, -1.0], "top-2": [0.9, 0.2]}, [0, 0.5])
        >>> print(t.to_markdown())
        |       | r = 0     | r = 0.5 | ACR       |
        |:------|----------:|--------:|----------:|
        | top-1 | 0.500     | 0.500   | 0.250     |
        | top-2 | **1.000** | 0.500   | **0.550** |
        """
        shown, best = self._cells(digits)
        header = [""] + self._header()
        rows = [[_md_escape(name)] + [f"**{s}**" if b else s for s, b in zip(cells, marks)]
                for name, cells, marks in zip(self.names, shown, best)]
        widths = [max(3, len(header[j]), *(len(row[j]) for row in rows))
                  for j in range(len(header))]

        def line(cells):
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

        rule = "|" + "|".join([":" + "-" * (widths[0] + 1)]
                              + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
        return "\n".join([line(header), rule] + [line(row) for row in rows])

    def to_latex(self, digits: int = 3) -> str:
        r"""A LaTeX ``tabular`` (needs ``\usepackage{booktabs}``); the best per column in bold.

        Examples
        --------
        >>> t = certified_accuracy_table({"top_1": [0.5, -1.0], "top_2": [0.9, 0.2]}, [0, 0.5])
        >>> print(t.to_latex())
        \begin{tabular}{lrrr}
        \toprule
         & $r = 0$ & $r = 0.5$ & ACR \\
        \midrule
        top\_1 & 0.500 & 0.500 & 0.250 \\
        top\_2 & \textbf{1.000} & 0.500 & \textbf{0.550} \\
        \bottomrule
        \end{tabular}
        """
        shown, best = self._cells(digits)
        header = [f"${h}$" for h in self._header()[:-1]] + ["ACR"]
        lines = [r"\begin{tabular}{l" + "r" * len(header) + "}", r"\toprule",
                 " & " + " & ".join(header) + r" \\", r"\midrule"]
        for name, cells, marks in zip(self.names, shown, best):
            cells = [(r"\textbf{%s}" % c if b else c).replace("inf", r"$\infty$")
                     for c, b in zip(cells, marks)]
            lines.append(_latex_escape(name) + " & " + " & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines)

    def caption(self) -> str:
        """One sentence that says what the numbers are."""
        sizes = sorted(set(self.num_inputs))
        n = (f"the {sizes[0]}" if len(sizes) == 1
             else "the " + "/".join(str(v) for v in self.num_inputs) + " (per curve)")
        return (f"Certified accuracy at radius r: the fraction of {n} inputs whose label is "
                "certified with a radius >= r (an input that is not certified counts as a miss at "
                "every r). ACR: average certified radius, not-certified inputs counting 0. "
                "Best value per column in bold.")

    # -- plot -------------------------------------------------------------------------------
    def plot(self, ax=None, *, max_radius: float | None = None, title: str | None = None):
        """Draw certified accuracy against radius, one exact step curve per row.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Where to draw; by default a new :class:`matplotlib.figure.Figure` is made
            (without pyplot, so no global backend or figure state is touched).
        max_radius : float, optional
            Right end of the x axis; by default a little past the largest finite radius or
            the last grid point, whichever is larger. Infinite radii stay flat to the edge.
        title : str, optional
            Axes title.

        Returns
        -------
        matplotlib Axes
        """
        if ax is None:
            from matplotlib.figure import Figure

            ax = Figure(figsize=(5.0, 3.6), layout="constrained").add_subplot()
        if max_radius is None:
            finite = [r[np.isfinite(r) & (r > 0)] for r in self.radii + (self.grid,)]
            top = max([float(f.max()) for f in finite if f.size] + [0.0])
            max_radius = 1.05 * top if top > 0 else 1.0
        elif not (math.isfinite(max_radius) and max_radius > 0):
            raise ValueError(f"max_radius must be a finite number > 0, got {max_radius!r}")
        for name, radius in zip(self.names, self.radii):
            x, y = _curve(radius, max_radius)
            ax.step(x, y, where="pre", label=name)
        ax.set_xlim(0, max_radius)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("radius r (L2)")
        ax.set_ylabel("certified accuracy")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right")
        if title:
            ax.set_title(title, fontsize="medium")
        return ax

    def savefig(self, stem: str | os.PathLike, *, max_radius: float | None = None,
                title: str | None = None) -> list[Path]:
        """Write the plot as ``stem.png`` and ``stem.pdf`` (atomically); returns both paths."""
        ax = self.plot(max_radius=max_radius, title=title)
        fig = ax.figure
        stem = Path(stem)
        paths = []
        for ext, extra in (("png", {"dpi": 150, "metadata": {"Software": None}}),
                           ("pdf", {"metadata": {"CreationDate": None, "Creator": None}})):
            path = stem.with_name(stem.name + "." + ext)
            with atomic_write(path, "wb") as fh:
                fig.savefig(fh, format=ext, **extra)
            paths.append(path)
        return paths


def certified_accuracy_table(radii: Mapping[str, Sequence[float]],
                             grid=DEFAULT_GRID) -> CertifiedAccuracyTable:
    """Certified accuracy and ACR of several curves on one grid of radii.

    Parameters
    ----------
    radii : mapping of str to array_like of float
        Curve name (e.g. ``"top-1"``) to signed radii, one per input.
    grid : array_like of float, optional
        The radii (>= 0) of the table's columns; :data:`DEFAULT_GRID` by default.

    Returns
    -------
    CertifiedAccuracyTable

    Examples
    --------
    >>> t = certified_accuracy_table({"top-1": [0.3, -0.1, 0.8], "top-3": [0.9, 0.4, 1.7]},
    ...                              grid=[0, 0.5, 1])
    >>> t
    CertifiedAccuracyTable(names=['top-1', 'top-3'], grid=[0.0, 0.5, 1.0], num_inputs=[3, 3])
    >>> t.accuracy.round(3).tolist()
    [[0.667, 0.333, 0.0], [1.0, 0.667, 0.333]]
    >>> t.acr.round(3).tolist()
    [0.367, 1.0]
    """
    if not radii:
        raise ValueError("radii is empty: give at least one curve")
    grid = _as_grid(grid)
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError("grid must hold at least one radius")
    names = tuple(str(n) for n in radii)
    arrays = tuple(_as_radius(radii[n], name=f"radii[{n!r}]") for n in radii)
    return CertifiedAccuracyTable(
        names=names,
        grid=grid,
        accuracy=np.array([certified_accuracy(r, grid) for r in arrays]),
        acr=np.array([average_certified_radius(r) for r in arrays]),
        num_inputs=tuple(r.size for r in arrays),
        radii=arrays,
    )


def _fmt(value: float, digits: int) -> str:
    return "inf" if value == math.inf else f"{value:.{digits}f}"


def _md_escape(text: str) -> str:
    return text.replace("|", r"\|")


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


# -- files --------------------------------------------------------------------------------

def _curve_name(column: str) -> str:
    """``radius_top3`` -> ``top-3``; ``radius_foo`` -> ``foo``."""
    suffix = column[len("radius_"):]
    m = re.fullmatch(r"top(\d+)", suffix)
    return f"top-{m.group(1)}" if m else suffix


def _read_tsv(path: str | os.PathLike) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, fields) rows of a tab-separated file; ``#`` lines skipped."""
    name = os.fspath(path)
    with open(path, encoding="utf-8") as fh:
        lines = [(i, line.rstrip("\r\n")) for i, line in enumerate(fh, start=1)]
    lines = [(i, line) for i, line in lines if line.strip() and not line.startswith("#")]
    if not lines:
        raise ValueError(f"{name}: the file is empty (expected a header line)")
    header = lines[0][1].split("\t")
    rows = []
    for lineno, line in lines[1:]:
        fields = line.split("\t")
        if len(fields) != len(header):
            raise ValueError(f"{name}: line {lineno}: has {len(fields)} fields, the header "
                             f"{len(header)}")
        rows.append((lineno, fields))
    if not rows:
        raise ValueError(f"{name}: the file has a header but no rows")
    return header, rows


def _column(path, header, rows, column: str, kind=float) -> np.ndarray:
    j = header.index(column)
    out = []
    for lineno, fields in rows:
        try:
            out.append(kind(fields[j]))
        except ValueError:
            raise ValueError(f"{os.fspath(path)}: line {lineno}: {column} {fields[j]!r} is not "
                             f"{'an integer' if kind is int else 'a number'}") from None
    return np.array(out, dtype=np.int64 if kind is int else np.float64)


@dataclass(frozen=True)
class _Curves:
    """What a TSV file holds: curves keyed by name, and its label/predict columns if any."""

    radii: dict
    labels: np.ndarray | None
    predict: np.ndarray | None


def _read_curves(path: str | os.PathLike) -> _Curves:
    header, rows = _read_tsv(path)
    if "radius" in header:
        columns = {"": "radius"}
    else:
        columns = {_curve_name(h): h for h in header if h.startswith("radius_")}
    if not columns:
        raise ValueError(f"{os.fspath(path)}: no 'radius' or 'radius_*' column in the header "
                         f"{header!r}")
    radii = {key: _column(path, header, rows, col) for key, col in columns.items()}
    if "correct" in header and "radius" in header:  # Cohen et al.'s format
        correct = _column(path, header, rows, "correct", int) == 1
        radii[""] = np.where(correct, radii[""], 0.0)
    labels = _column(path, header, rows, "label", int) if "label" in header else None
    predict = _column(path, header, rows, "predict", int) if "predict" in header else None
    return _Curves(radii, labels, predict)


def read_radii(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the radius column(s) of a tab-separated file with a header line.

    Understands the outputs of ``topk-bounds certify`` (one ``radius`` column), of ``report``
    and ``demo`` (``radius_top1``, ``radius_top2``, ... columns) and Cohen et al.'s format
    (``radius`` and ``correct``: a row counts as certified only where ``correct`` is 1).
    Lines starting with ``#`` are skipped.

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
        Naming the file and line, for a missing header, no radius column, a ragged row or a
        value that is not a number.

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
    return _read_curves(path).radii


def write_radii(path: str | os.PathLike, labels, radii: Mapping[str, Sequence[float]],
                predict=None) -> Path:
    """Write ``idx label [predict] radius_<name> ...`` as tab-separated text, atomically.

    Curve names ``top-K`` become columns ``radius_topK``, so :func:`read_radii` reads the
    file back under the same names. Radii are written exactly (``repr``), ``inf`` included.
    ``predict`` (optional) is one integer per input, -1 for an abstention.
    """
    labels = np.asarray(labels)
    columns = [("radius_" + n.replace("-", ""), _as_radius(r, f"radii[{n!r}]"))
               for n, r in radii.items()]
    for col, r in columns:
        if r.size != labels.size:
            raise ValueError(f"{col} has {r.size} values for {labels.size} labels")
    header = ["idx", "label"] + (["predict"] if predict is not None else []) + [c for c, _ in columns]
    with atomic_write(path) as fh:
        fh.write("\t".join(header) + "\n")
        for i in range(labels.size):
            row = [str(i), str(int(labels[i]))]
            if predict is not None:
                row.append(str(int(predict[i])))
            row += [repr(float(r[i])) for _, r in columns]
            fh.write("\t".join(row) + "\n")
    return Path(path)


def write_cohen(path: str | os.PathLike, labels, radius, *, predict=None, times=None) -> Path:
    """Write Cohen et al.'s certification format, ``idx label predict radius correct time``.

    Their analysis scripts compute certified accuracy at ``r`` as the mean of
    ``correct & (radius >= r)``; this file is written so that the result is exactly
    :func:`certified_accuracy` of the signed radii.

    Parameters
    ----------
    path : str or path-like
        Written atomically.
    labels : array_like of int, shape (N,)
    radius : array_like of float, shape (N,)
        Signed radii of the labels (from :func:`topk_bounds.certify`, any k).
    predict : array_like of int, shape (N,), optional
        The smoothed classifier's top-1 prediction, -1 for an abstention; -1 everywhere
        when not given (Cohen's analysis scripts do not read this column).
    times : array_like of float, optional
        Seconds spent per input, written as ``H:MM:SS.ffffff`` like Cohen's code; 0 by default.

    Notes
    -----
    ``correct`` is 1 exactly when the label is certified (``radius > 0``): for k = 1 that is
    Cohen's "prediction is right and not an abstention"; for k > 1 it means "label certified
    in the top-k". Rows that are not certified get radius 0.0 and correct 0, as Cohen's
    abstentions do.
    """
    labels = np.asarray(labels)
    r = _as_radius(radius)
    if r.size != labels.size:
        raise ValueError(f"radius has {r.size} values for {labels.size} labels")
    predict = np.full(r.size, -1) if predict is None else np.asarray(predict)
    times = np.zeros(r.size) if times is None else np.asarray(times, dtype=np.float64)
    certified = r > 0
    with atomic_write(path) as fh:
        fh.write("idx\tlabel\tpredict\tradius\tcorrect\ttime\n")
        for i in range(r.size):
            shown = repr(float(r[i])) if certified[i] else "0.0"
            elapsed = str(datetime.timedelta(seconds=float(times[i])))
            fh.write(f"{i}\t{int(labels[i])}\t{int(predict[i])}\t{shown}\t{int(certified[i])}"
                     f"\t{elapsed}\n")
    return Path(path)


def write_report(table: CertifiedAccuracyTable, out_dir: str | os.PathLike, *,
                 stem: str = "certified_accuracy", digits: int = 3,
                 title: str | None = None, max_radius: float | None = None) -> list[Path]:
    """Write ``stem.png``, ``stem.pdf``, ``stem.md`` and ``stem.tex`` into ``out_dir``."""
    out = Path(out_dir)
    paths = table.savefig(out / stem, max_radius=max_radius, title=title)
    md = out / f"{stem}.md"
    with atomic_write(md) as fh:
        heading = f"# {title}\n\n" if title else ""
        fh.write(f"{heading}{table.caption()}\n\n{table.to_markdown(digits)}\n")
    tex = out / f"{stem}.tex"
    with atomic_write(tex) as fh:
        fh.write(f"% {table.caption()}\n% Needs \\usepackage{{booktabs}}.\n"
                 f"{table.to_latex(digits)}\n")
    return paths + [md, tex]


# -- the ``report`` subcommand --------------------------------------------------------------

def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``report`` subcommand's arguments to ``parser``."""
    from .argtypes import finite_positive, positive_int, probability

    parser.description = (
        "Plot and tabulate certified accuracy. Give certify outputs (TSV files with a 'radius' "
        "column or 'radius_*' columns), or a count file with --counts/--k/--sigma/--alpha, or both.")
    parser.add_argument("tsv", nargs="*", help="certify, demo or Cohen-format TSV files")
    parser.add_argument("--out", required=True, help="output directory (created if needed)")
    parser.add_argument("--names", nargs="+", metavar="NAME",
                        help="one legend name per curve, in order (default: from the files)")
    parser.add_argument("--grid", type=argtypes.grid, default=list(DEFAULT_GRID),
                        help="comma-separated radii of the table's columns "
                             "(default: 0,0.25,...,2)")
    parser.add_argument("--digits", type=positive_int("--digits"), default=3,
                        help="decimals in the tables (default: 3)")
    parser.add_argument("--max-radius", type=finite_positive("--max-radius"),
                        help="right end of the plot's x axis")
    parser.add_argument("--title", help="title of the plot and the Markdown file")
    parser.add_argument("--cohen", action="store_true",
                        help="also write each curve in Cohen et al.'s format (cohen_<name>.tsv)")
    group = parser.add_argument_group("certify a count file")
    group.add_argument("--counts", metavar="FILE", help="count file to certify")
    group.add_argument("--k", type=argtypes.k_list, default=[1, 2, 3],
                       help="comma-separated top-k sizes, one curve each (default: 1,2,3)")
    group.add_argument("--sigma", type=finite_positive("--sigma"),
                       help="noise level the counts were sampled with")
    group.add_argument("--alpha", type=probability("--alpha"),
                       help="failure probability of each certificate")
    group.add_argument("--method", choices=("simuem", "binocp", "ranked"), default="simuem",
                       help="probability bounds (default: simuem)")


def _certify_counts(path: str, ks: Sequence[int], *, sigma: float, alpha: float,
                    method: str):
    """Radii of every k, the labels and the top-1 prediction (-1 = abstain) of a count file."""
    import topk_bounds
    from .io import read_counts

    data = read_counts(path)
    radii = {f"top-{k}": topk_bounds.certify(data.counts, data.labels, k=k, sigma=sigma,
                                             alpha=alpha, method=method).radius for k in ks}
    pred = topk_bounds.predict(data.counts, k=1, alpha=alpha)
    predict = np.where(pred.abstained, -1, np.asarray(pred.labels)[:, 0])
    return radii, data.labels, predict


def run(args: argparse.Namespace) -> int:
    """Run the ``report`` subcommand; returns the exit status."""
    from .argtypes import CLIError

    if not args.tsv and not args.counts:
        raise CLIError("nothing to report: give TSV files and/or --counts FILE")
    # One entry per curve: (default name, radii, labels or None, predict or None).
    curves: list[tuple[str, np.ndarray, np.ndarray | None, np.ndarray | None]] = []
    for path in args.tsv:
        found = _read_curves(path)
        stem = Path(path).stem
        for key, radius in found.radii.items():
            name = stem if key == "" else key if len(args.tsv) == 1 else f"{stem}: {key}"
            curves.append((name, radius, found.labels, found.predict))
    if args.counts:
        if args.sigma is None or args.alpha is None:
            raise CLIError("--counts needs --sigma and --alpha")
        radii, labels, predict = _certify_counts(args.counts, args.k, sigma=args.sigma,
                                                 alpha=args.alpha, method=args.method)
        curves += [(name, radius, labels, predict) for name, radius in radii.items()]
        first_computed = len(curves) - len(radii)
    names = args.names or [c[0] for c in curves]
    if len(names) != len(curves):
        raise CLIError(f"--names gives {len(names)} name(s) for {len(curves)} curve(s) "
                       f"({', '.join(repr(c[0]) for c in curves)})")
    if len(set(names)) != len(names):
        raise CLIError(f"curve names must differ, got {names}")
    if args.cohen:
        for name, curve in zip(names, curves):
            if curve[2] is None:
                raise CLIError(f"--cohen needs a 'label' column, and the file of curve {name!r} "
                               "has none")
    table = certified_accuracy_table({n: c[1] for n, c in zip(names, curves)}, args.grid)
    out = Path(args.out)
    written = write_report(table, out, digits=args.digits, title=args.title,
                           max_radius=args.max_radius)
    if args.counts:
        computed = {n: c[1] for n, c in list(zip(names, curves))[first_computed:]}
        written.append(write_radii(out / "radii.tsv", labels, computed, predict=predict))
    if args.cohen:
        for name, (_, radius, labels, predict) in zip(names, curves):
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "curve"
            written.append(write_cohen(out / f"cohen_{safe}.tsv", labels, radius,
                                       predict=predict))
    print(table.to_markdown(args.digits))
    for path in written:
        print(f"wrote {path}")
    sys.stdout.flush()
    return 0
