"""Files of adaptive certification (``topk-bounds sample --target-radius``), read and reported.

The file holds the decisions of :func:`topk_bounds.adaptive.certify_adaptive` (run by
:func:`sampler.sample_adaptive`) for every input: a ``# topk-bounds sample v2
mode=adaptive ...`` header line (:func:`topk_bounds.io.format_header`) that records the
target radius, k, alpha, method, max_n, the schedule of looks, the noise and everything the
rows depend on; a line of column names; then one tab-separated row per input::

    idx  label  certified  decision  stop_radius  n  looks  count_0 ... count_{c-1}

``certified`` is 1 exactly when ``decision`` is ``certified``; ``decision`` is one of
``certified``, ``futile`` (stopped early: it could not be certified within max_n) and
``max_n`` (the full budget drawn without a certificate); ``stop_radius`` is the radius
certified at the look where the input stopped, at that look's share of alpha (``repr`` of
the float64, ``-inf`` for a look that spends no alpha); ``n`` the samples drawn, ``looks``
how many looks it took, then its counts (they sum to ``n``).

The counts were gathered with optional stopping: ``topk-bounds certify`` and
``report --counts`` refuse the file (:func:`topk_bounds.io.check_fixed_n`), and so that
no tool reads ``stop_radius`` as a curve of radii, it is not named ``radius``.

:func:`adaptive_report_files` renders what ``topk-bounds report FILE`` writes for such a
file: ``adaptive.md`` (certified accuracy at the target, the decisions, the samples used and
the saving against max_n) and the histogram ``adaptive_samples.png`` / ``.pdf``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import is_header, parse_header
from .table import figure_bytes, require_matplotlib

__all__ = ["COLUMNS", "DECISIONS", "AdaptiveFile", "column_line", "format_row",
           "is_adaptive", "peek_header", "read_adaptive_file", "adaptive_markdown",
           "render_samples_histogram", "adaptive_report_files"]

#: The columns before the counts.
COLUMNS = ("idx", "label", "certified", "decision", "stop_radius", "n", "looks")
#: The values of the ``decision`` column, in the order the report lists them.
DECISIONS = ("certified", "futile", "max_n")
#: Header fields a reader needs (besides kind, version and mode).
_REQUIRED = ("target_radius", "k", "alpha", "method", "max_n", "looks", "sigma", "classes",
             "rows")


def column_line(n_classes: int) -> str:
    """The line of column names of a file with ``n_classes`` counts per row.

    >>> column_line(3).split("\\t")
    ['idx', 'label', 'certified', 'decision', 'stop_radius', 'n', 'looks', 'count_0', 'count_1', 'count_2']
    """
    return "\t".join(COLUMNS + tuple(f"count_{j}" for j in range(n_classes)))


def format_row(idx: int, label: int, decision: str, radius: float, n: int, looks: int,
               counts) -> str:
    """One row, newline-terminated; the radius as ``repr`` so that it reads back exactly.

    >>> format_row(4, 1, "certified", 0.3125, 256, 2, [3, 250, 3])
    '4\\t1\\t1\\tcertified\\t0.3125\\t256\\t2\\t3\\t250\\t3\\n'
    """
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    cells = [str(int(idx)), str(int(label)), "1" if decision == "certified" else "0", decision,
             repr(float(radius)), str(int(n)), str(int(looks))]
    return "\t".join(cells + [str(int(v)) for v in counts]) + "\n"


def is_adaptive(meta) -> bool:
    """Whether a header (:func:`topk_bounds.io.parse_header`) is that of an adaptive file."""
    return meta.get("kind") == "sample" and meta.get("mode", "fixed") != "fixed"


def peek_header(path: str | os.PathLike, limit: int = 64) -> dict:
    """The header of a text file: its first ``# topk-bounds ...`` line among the comment
    lines at its start (within the first ``limit`` lines); ``{}`` if there is none or the
    file is not text. Only the start of the file is read."""
    try:
        with open(path, "rb") as fh:
            for _ in range(limit):
                raw = fh.readline()
                if not raw:
                    return {}
                text = raw.decode("utf-8-sig", "replace").rstrip("\r\n")
                if text.strip() and not text.startswith("#"):
                    return {}
                if is_header(text):
                    try:
                        return parse_header(text)
                    except ValueError:
                        return {}
    except OSError:
        return {}
    return {}


@dataclass(frozen=True, repr=False)
class AdaptiveFile:
    """The decisions of an adaptive file (:func:`read_adaptive_file`), one entry per input.

    Attributes
    ----------
    path : str
    meta : dict of str to str
        The header's fields.
    labels, n, looks : ndarray of int64, shape (N,)
    certified : ndarray of bool, shape (N,)
    decision : ndarray of str, shape (N,)
    radius : ndarray of float64, shape (N,)
        The ``stop_radius`` column.
    counts : ndarray of int64, shape (N, c)
    target, alpha, sigma : float
    k, max_n : int
    method : str
    schedule : ndarray of int64, shape (L,)
        The cumulative sample sizes of the looks (the header's ``looks``).
    """

    path: str
    meta: dict
    labels: np.ndarray
    certified: np.ndarray
    decision: np.ndarray
    radius: np.ndarray
    n: np.ndarray
    looks: np.ndarray
    counts: np.ndarray
    target: float
    k: int
    alpha: float
    sigma: float
    method: str
    max_n: int
    schedule: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return self.labels.size

    @property
    def certified_accuracy(self) -> float:
        """The share of inputs certified at the target radius."""
        return float(self.certified.mean())

    def __repr__(self) -> str:
        return (f"AdaptiveFile({self.path!r}, N={len(self)}, k={self.k}, target={self.target:g}, "
                f"certified={int(self.certified.sum())}/{len(self)}, mean n={self.n.mean():.6g} "
                f"of max_n={self.max_n})")


def _header_number(meta, key: str, kind, where: str):
    try:
        value = kind(meta[key])
    except (ValueError, OverflowError):
        raise ValueError(f"{where}: its header's {key}={meta[key]!r} is not "
                         f"{'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise ValueError(f"{where}: its header's {key}={meta[key]!r} is not finite")
    return value


def read_adaptive_file(path: str | os.PathLike) -> AdaptiveFile:
    """Read and check an adaptive file (see the module docstring for the format).

    Raises
    ------
    ValueError
        Naming the file and line: a file without an adaptive header (or missing one of its
        fields), a line of column names that does not match the header's classes, a row
        that does not parse, whose ``idx`` is not its position, whose counts do not sum to
        ``n``, whose ``n`` is not the look ``looks`` of the schedule, whose ``decision`` and
        ``certified`` disagree or contradict ``stop_radius`` and the target, or fewer rows
        than the header's ``rows`` (an unfinished run: rerun the command to complete it).

    Examples
    --------
    >>> import os, tempfile
    >>> from topk_bounds.io import format_header
    >>> head = format_header("sample", dict(mode="adaptive", target_radius=0.25, k=1,
    ...     alpha=0.001, method="ranked", max_n=1000, looks="128,1000", sigma=0.5,
    ...     classes=2, rows=2), version=2)
    >>> p = os.path.join(tempfile.mkdtemp(), "adaptive.tsv")
    >>> _ = open(p, "w").write(head + "\\n" + column_line(2) + "\\n"
    ...     + format_row(0, 0, "certified", 0.41, 128, 1, [128, 0])
    ...     + format_row(1, 1, "futile", -0.2, 128, 1, [100, 28]))
    >>> f = read_adaptive_file(p)
    >>> f.certified.tolist(), f.n.tolist(), f.certified_accuracy
    ([True, False], [128, 128], 0.5)
    """
    from .files import _text_lines

    name = os.fsdecode(os.fspath(path))
    lines = _text_lines(path)
    meta: dict = {}
    at = 0
    while at < len(lines) and (not lines[at].strip() or lines[at].startswith("#")):
        if not meta and is_header(lines[at]):
            try:
                meta = parse_header(lines[at])
            except ValueError as exc:
                raise ValueError(f"{name}: line {at + 1}: {exc}") from None
        at += 1
    if not is_adaptive(meta):
        raise ValueError(f"{name}: not an adaptive file (its header must say kind sample, "
                         "mode=adaptive: written by 'topk-bounds sample --target-radius')")
    missing = [key for key in _REQUIRED if key not in meta]
    if missing:
        raise ValueError(f"{name}: its header lacks {', '.join(missing)}")
    target = _header_number(meta, "target_radius", float, name)
    alpha = _header_number(meta, "alpha", float, name)
    sigma = _header_number(meta, "sigma", float, name)
    k = _header_number(meta, "k", int, name)
    max_n = _header_number(meta, "max_n", int, name)
    n_classes = _header_number(meta, "classes", int, name)
    n_rows = _header_number(meta, "rows", int, name)
    try:
        schedule = np.array([int(v) for v in meta["looks"].split(",")], dtype=np.int64)
    except ValueError:
        raise ValueError(f"{name}: its header's looks={meta['looks']!r} is not a comma-separated "
                         "list of integers") from None
    if schedule.size == 0 or np.any(np.diff(schedule) <= 0) or schedule[-1] != max_n:
        raise ValueError(f"{name}: its header's looks={meta['looks']!r} must increase to "
                         f"max_n={max_n}")
    if n_classes < 1 or n_rows < 1:
        raise ValueError(f"{name}: its header's classes and rows must be >= 1")
    expected_columns = column_line(n_classes)
    if at >= len(lines) or lines[at] != expected_columns:
        got = lines[at][:80] if at < len(lines) else "(end of file)"
        raise ValueError(f"{name}: line {at + 1}: expected the column names "
                         f"{expected_columns[:60]!r}..., got {got!r}")
    body = [(i + 1, lines[i]) for i in range(at + 1, len(lines)) if lines[i].strip()]
    if len(body) != n_rows:
        raise ValueError(f"{name}: holds {len(body)} of the {n_rows} rows its header announces "
                         "(an unfinished run: run the same 'topk-bounds sample' command again "
                         "to complete it)")
    width = len(COLUMNS) + n_classes
    labels = np.empty(n_rows, dtype=np.int64)
    n = np.empty(n_rows, dtype=np.int64)
    looks = np.empty(n_rows, dtype=np.int64)
    radius = np.empty(n_rows, dtype=np.float64)
    decision = np.empty(n_rows, dtype="<U9")
    counts = np.empty((n_rows, n_classes), dtype=np.int64)
    for row, (line_no, text) in enumerate(body):
        where = f"{name}: line {line_no}"
        cells = text.split("\t")
        if len(cells) != width:
            raise ValueError(f"{where}: has {len(cells)} fields, expected {width}")
        try:
            idx, label, cert = int(cells[0]), int(cells[1]), int(cells[2])
            rad, used, took = float(cells[4]), int(cells[5]), int(cells[6])
            values = [int(v) for v in cells[7:]]
        except ValueError:
            raise ValueError(f"{where}: a field is not a number") from None
        dec = cells[3]
        problem = None
        if idx != row:
            problem = f"idx {idx} is not the row's position {row}"
        elif not 0 <= label < n_classes:
            problem = f"label {label} is outside 0..{n_classes - 1}"
        elif dec not in DECISIONS:
            problem = f"decision {dec!r} is not one of {', '.join(DECISIONS)}"
        elif cert != (dec == "certified"):
            problem = f"certified={cert} contradicts decision {dec}"
        elif math.isnan(rad) or (rad >= target) != (dec == "certified"):
            problem = (f"stop_radius {cells[4]} contradicts decision {dec} at the target "
                       f"radius {target!r}")
        elif min(values) < 0 or sum(values) != used:
            problem = f"the counts sum to {sum(values)}, not n = {used}"
        elif not 1 <= took <= schedule.size or used != schedule[took - 1]:
            problem = f"n = {used} is not the sample size of look {took} of the schedule"
        elif (dec == "max_n") != (used == max_n and dec != "certified"):
            problem = f"decision {dec} with n = {used} (max_n = {max_n})"
        if problem:
            raise ValueError(f"{where}: {problem}")
        labels[row], n[row], looks[row], radius[row], decision[row] = label, used, took, rad, dec
        counts[row] = values
    return AdaptiveFile(path=name, meta=meta, labels=labels, certified=decision == "certified",
                        decision=decision, radius=radius, n=n, looks=looks, counts=counts,
                        target=target, k=k, alpha=alpha, sigma=sigma, method=meta["method"],
                        max_n=max_n, schedule=schedule)


def _int(value: float) -> str:
    return f"{value:,.0f}"


def adaptive_markdown(found: AdaptiveFile, title: str | None = None) -> str:
    """The Markdown summary of an adaptive file: certified accuracy at the target, the
    decisions, the samples used per input and the saving against ``max_n`` for every input.

    Every number is read from the file; nothing is certified again.
    """
    total = len(found)
    cert = int(found.certified.sum())
    noise = found.meta.get("noise", "gaussian")
    if found.meta.get("delta"):
        noise += f", delta = {found.meta['delta']}"
    if found.meta.get("grid"):
        noise += f", grid {found.meta['grid']}"
    heading = title or f"Adaptive certification: {Path(found.path).name}"
    used = found.n.sum(dtype=np.int64)
    budget = total * found.max_n
    lines = [
        f"# {heading}", "",
        f"Certified top-{found.k} accuracy at radius r = {found.target:g}: "
        f"**{cert / total:.3f}** ({cert} of {total} inputs), the decisions the file records "
        f"(sigma = {found.sigma:g}, {noise} noise; alpha = {found.alpha:g} per input over all "
        f"looks; {found.method} bounds). For each input, the probability that it is certified "
        f"while its true top-{found.k} radius is below {found.target:g} is at most alpha.", "",
        "| decision | inputs | share | mean n | median n |",
        "|:---|---:|---:|---:|---:|",
    ]
    for dec in DECISIONS:
        mask = found.decision == dec
        if mask.any():
            lines.append(f"| {dec} | {int(mask.sum())} | {mask.mean():.1%} | "
                         f"{_int(found.n[mask].mean())} | {_int(np.median(found.n[mask]))} |")
        else:
            lines.append(f"| {dec} | 0 | 0.0% | - | - |")
    lines += [
        "",
        f"Samples per input: mean {_int(found.n.mean())}, median {_int(np.median(found.n))}, "
        f"max {_int(found.n.max())} (max_n = {_int(found.max_n)}). In all {_int(used)} noisy "
        f"forward passes, against {_int(budget)} for max_n samples of every input: "
        f"{budget / used:.1f}x fewer.", "",
        "| look | n | inputs stopped | certified | futile | max_n |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for j, n_j in enumerate(found.schedule.tolist()):
        at = found.looks == j + 1
        parts = [str(int((at & (found.decision == dec)).sum())) for dec in DECISIONS]
        lines.append(f"| {j + 1} | {_int(n_j)} | {int(at.sum())} | " + " | ".join(parts) + " |")
    return "\n".join(lines) + "\n"


def render_samples_histogram(found: AdaptiveFile, fmt: str, *, title: str | None = None) -> bytes:
    """A bar chart of the inputs that stopped at each look, stacked by decision, as the
    bytes of a ``"png"`` or ``"pdf"`` file (reproducible: no dates).

    Raises ``ImportError`` naming the ``plot`` extra if matplotlib is not installed.
    """
    if fmt not in ("png", "pdf"):
        raise ValueError(f"fmt must be 'png' or 'pdf', got {fmt!r}")
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    positions = np.arange(found.schedule.size)
    bottom = np.zeros(found.schedule.size)
    colours = {"certified": "tab:green", "futile": "tab:gray", "max_n": "tab:orange"}
    for dec in DECISIONS:
        heights = np.array([np.sum((found.looks == j + 1) & (found.decision == dec))
                            for j in positions], dtype=float)
        ax.bar(positions, heights, bottom=bottom, color=colours[dec], label=dec, width=0.8)
        bottom += heights
    ax.set_xticks(positions, [f"{v:,}" for v in found.schedule.tolist()], rotation=60,
                  fontsize="small")
    ax.set_xlabel("samples used per input (the look where it stopped)")
    ax.set_ylabel("inputs")
    ax.legend(loc="upper right")
    ax.grid(True, axis="y", alpha=0.3)
    mean = found.n.mean()
    ax.set_title(title or (f"top-{found.k} at r = {found.target:g}: mean n {mean:,.0f} of "
                           f"max_n {found.max_n:,} ({found.max_n / mean:.1f}x fewer)"),
                 fontsize="medium")
    return figure_bytes(fig, fmt)


def adaptive_report_files(found: AdaptiveFile, out_dir: str | os.PathLike, *,
                          title: str | None = None, plots: bool = True) -> dict:
    """The contents of the files ``report`` writes for an adaptive file, path to text or
    bytes: ``adaptive.md`` and (with ``plots``) ``adaptive_samples.png`` and ``.pdf``.
    Everything is rendered here, before anything is written."""
    out = Path(out_dir)
    files: dict = {}
    if plots:
        for ext in ("png", "pdf"):
            files[out / f"adaptive_samples.{ext}"] = render_samples_histogram(found, ext,
                                                                             title=title)
    files[out / "adaptive.md"] = adaptive_markdown(found, title=title)
    return files
