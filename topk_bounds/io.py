"""Reading and writing the count-file format of Jia et al. and atomic output files.

A count file holds one input per line: ``c`` whitespace-separated non-negative integer
counts (how often the base classifier predicted each label under Gaussian noise), then the
true label, an integer in ``0 .. c-1``. Blank lines and lines starting with ``#`` are
ignored. This is the format of the paper's released data and of ``topk-bounds sample``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

import numpy as np

__all__ = ["CountFile", "read_counts", "format_count_row", "atomic_write"]


@dataclass(frozen=True, repr=False)
class CountFile:
    """The contents of a count file.

    Attributes
    ----------
    counts : ndarray of int64, shape (N, c)
        Per-label counts, one row per input.
    labels : ndarray of int64, shape (N,)
        The label of each input (the last column of the file).
    lines : ndarray of int64, shape (N,)
        The 1-based line number each row came from, for error messages.
    """

    counts: np.ndarray
    labels: np.ndarray
    lines: np.ndarray

    def __repr__(self) -> str:
        n_inputs, n_classes = self.counts.shape
        return f"CountFile(inputs={n_inputs}, classes={n_classes})"


def read_counts(path: str | os.PathLike) -> CountFile:
    """Read a count file, validating every row.

    Parameters
    ----------
    path : str or path-like
        The file to read.

    Returns
    -------
    CountFile
        The counts, labels and source line numbers.

    Raises
    ------
    ValueError
        With a message of the form ``"line 2: ..."`` for an empty file, a negative or
        non-integer count, a ragged row, a label outside ``0 .. c-1`` or a row whose
        counts sum to 0.
    OSError
        If the file cannot be read.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "counts.txt")
    ...     _ = open(p, "w").write("90 7 3 0\\n1 98 1 1\\n")
    ...     f = read_counts(p)
    >>> f
    CountFile(inputs=2, classes=3)
    >>> f.labels.tolist()
    [0, 1]
    """
    rows: list[list[int]] = []
    lines: list[int] = []
    width = None
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.split()
            try:
                values = [int(f) for f in fields]
            except ValueError:
                bad = next(f for f in fields if not _is_int(f))
                raise ValueError(f"line {lineno}: {bad!r} is not an integer") from None
            if len(values) < 3:
                raise ValueError(
                    f"line {lineno}: expected at least 2 counts and a label, got {len(values)} field(s)"
                )
            if width is None:
                width = len(values)
            elif len(values) != width:
                raise ValueError(
                    f"line {lineno}: has {len(values)} fields but earlier rows have {width} "
                    "(every row needs the same number of counts)"
                )
            *counts, label = values
            if min(counts) < 0:
                raise ValueError(f"line {lineno}: count {min(counts)} is negative")
            if not 0 <= label < len(counts):
                raise ValueError(
                    f"line {lineno}: label {label} is outside 0..{len(counts) - 1}"
                )
            if sum(counts) == 0:
                raise ValueError(f"line {lineno}: the counts sum to n = 0 (no samples)")
            rows.append(values)
            lines.append(lineno)
    if not rows:
        raise ValueError(f"{os.fspath(path)}: the file holds no count rows")
    table = np.array(rows, dtype=np.int64)
    return CountFile(
        counts=np.ascontiguousarray(table[:, :-1]),
        labels=np.ascontiguousarray(table[:, -1]),
        lines=np.array(lines, dtype=np.int64),
    )


def _is_int(field: str) -> bool:
    try:
        int(field)
    except ValueError:
        return False
    return True


def format_count_row(counts, label: int) -> str:
    """One line of a count file: the counts, then the label, newline-terminated.

    >>> format_count_row([5, 0, 95], 2)
    '5 0 95 2\\n'
    """
    return " ".join(str(int(v)) for v in counts) + f" {int(label)}\n"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[TextIO]:
    """Open a temporary file beside ``path`` and move it into place only on success.

    If the body raises, the temporary file is removed and ``path`` is left as it was
    (absent, or with its previous contents).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
