"""Tables and plots of certified accuracy: :class:`CertifiedAccuracyTable`.

One row (or curve) per k, or per method; one column per radius of a grid, then the average
certified radius. Markdown and LaTeX mark the best value of each column in bold. Nothing
here imports matplotlib until a plot is drawn.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .._atomic import AtomicGroup
from .metrics import (DEFAULT_GRID, _as_grid, _as_radius, average_certified_radius,
                      certified_accuracy, step_curve)

__all__ = ["CertifiedAccuracyTable", "certified_accuracy_table", "check_digits"]


def check_digits(digits) -> int:
    """``digits`` of the tables: an integer in 0..12."""
    if isinstance(digits, bool) or not (isinstance(digits, int) and 0 <= digits <= 12):
        raise ValueError(f"digits must be an integer in 0..12, got {digits!r}")
    return digits


#: What a saved figure must not carry, so that the same plot gives the same bytes.
_SAVE_OPTIONS = {"png": {"dpi": 150, "metadata": {"Software": None}},
                 "pdf": {"metadata": {"CreationDate": None, "Creator": None}}}


def require_matplotlib() -> None:
    """Raise ``ImportError`` naming the ``plot`` extra if matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"plots need matplotlib: install topk-bounds[plot] ({exc})") from None


def figure_bytes(fig, fmt: str) -> bytes:
    """A matplotlib figure as the bytes of a ``"png"`` or ``"pdf"`` file, without dates or
    version stamps (reproducible)."""
    import io

    if fmt not in _SAVE_OPTIONS:
        raise ValueError(f"fmt must be 'png' or 'pdf', got {fmt!r}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, **_SAVE_OPTIONS[fmt])
    return buffer.getvalue()


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
        check_digits(digits)
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
            x, y = step_curve(radius, max_radius)
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

    def render(self, fmt: str, *, max_radius: float | None = None,
               title: str | None = None) -> bytes:
        """The plot as the bytes of a ``"png"`` or ``"pdf"`` file (reproducible: no dates).

        Raises ``ImportError`` naming the ``plot`` extra if matplotlib is not installed.
        """
        require_matplotlib()
        return figure_bytes(self.plot(max_radius=max_radius, title=title).figure, fmt)

    def savefig(self, stem: str | os.PathLike, *, max_radius: float | None = None,
                title: str | None = None) -> list[Path]:
        """Write the plot as ``stem.png`` and ``stem.pdf``, both or neither; returns both paths."""
        stem = Path(stem)
        files = {stem.with_name(f"{stem.name}.{ext}"): self.render(ext, max_radius=max_radius,
                                                                  title=title)
                 for ext in ("png", "pdf")}
        with AtomicGroup() as group:
            for path, data in files.items():
                group.write_bytes(path, data)
        return list(files)


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
