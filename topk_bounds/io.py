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
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, TextIO

import numpy as np

__all__ = ["CountFile", "read_counts", "format_count_row", "format_header", "parse_header",
           "atomic_write", "AtomicGroup"]


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
    meta : dict of str to str
        The fields of the file's ``# topk-bounds ...`` header line (:func:`parse_header`),
        with ``"kind"`` and ``"version"``; empty when the file has none.
    """

    counts: np.ndarray
    labels: np.ndarray
    lines: np.ndarray
    meta: dict = field(default_factory=dict)

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
    meta: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            text = raw.strip()
            if not text or text.startswith("#"):
                if not meta and not rows and text.startswith(HEADER_PREFIX):
                    with contextlib.suppress(ValueError):  # a free-form comment stays one
                        meta = parse_header(text)
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
        meta=meta,
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


#: Every header line that topk-bounds writes starts with this.
HEADER_PREFIX = "# topk-bounds "

# Characters a header value keeps as they are; every other one is percent-escaped, so a
# value never holds a space, a newline, '=' or a non-ASCII character.
_SAFE = ":/,+@"


def format_header(kind: str, fields: Mapping[str, object], version: int = 1) -> str:
    """One ``#`` line recording what produced a file: ``# topk-bounds KIND vN key=value ...``.

    Keys must be identifiers; values are written with :func:`str` and percent-escaped
    (``urllib.parse.quote``), so a path holding spaces, ``=`` or a newline stays on the line
    and reads back exactly with :func:`parse_header`. No newline is appended.

    >>> line = format_header("sample", {"n": 100, "inputs": "my data\\nset.pt"})
    >>> line
    '# topk-bounds sample v1 n=100 inputs=my%20data%0Aset.pt'
    >>> parse_header(line)
    {'kind': 'sample', 'version': '1', 'n': '100', 'inputs': 'my data\\nset.pt'}
    """
    if not kind.isidentifier():
        raise ValueError(f"kind must be an identifier, got {kind!r}")
    items = []
    for key, value in fields.items():
        if not key.isidentifier() or key in ("kind", "version"):
            raise ValueError(f"header keys must be identifiers other than kind/version, got {key!r}")
        items.append(f"{key}={urllib.parse.quote(str(value), safe=_SAFE)}")
    return " ".join([HEADER_PREFIX + kind, f"v{int(version)}", *items])


def parse_header(line: str) -> dict[str, str]:
    """The fields of a :func:`format_header` line, with ``"kind"`` and ``"version"``.

    Raises ``ValueError`` for a line that does not have that form.
    """
    text = line.rstrip("\r\n")
    if not text.startswith(HEADER_PREFIX):
        raise ValueError(f"not a topk-bounds header line: {text[:80]!r}")
    words = text[len(HEADER_PREFIX):].split(" ")
    if len(words) < 2 or not words[1].startswith("v") or not words[1][1:].isdigit():
        raise ValueError(f"not a topk-bounds header line: {text[:80]!r}")
    out = {"kind": words[0], "version": words[1][1:]}
    for word in words[2:]:
        key, sep, value = word.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"malformed header field {word[:80]!r}")
        out[key] = urllib.parse.unquote(value)
    return out


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


class AtomicGroup:
    """Several output files that appear together or not at all.

    Each :meth:`open` writes to a temporary file beside its target; leaving the ``with``
    block normally moves every one into place (in the order opened), and an exception
    removes them all, leaving every target as it was. Validate and compute everything
    before the block: the renames at its end are the only step that touches the targets.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> try:
    ...     with AtomicGroup() as group:
    ...         with group.open(os.path.join(d, "a.txt")) as fh:
    ...             _ = fh.write("a")
    ...         raise RuntimeError("disk full")
    ... except RuntimeError:
    ...     pass
    >>> os.listdir(d)  # neither a.txt nor its temporary file
    []
    >>> with AtomicGroup() as group:
    ...     with group.open(os.path.join(d, "a.txt")) as fh:
    ...         _ = fh.write("a")
    >>> os.listdir(d)
    ['a.txt']
    """

    def __init__(self) -> None:
        self._pending: list[tuple[str, Path]] = []

    def __enter__(self) -> "AtomicGroup":
        return self

    @contextlib.contextmanager
    def open(self, path: str | os.PathLike, mode: str = "w") -> Iterator[TextIO]:
        """A file that becomes ``path`` when the group succeeds (see the class)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        self._pending.append((tmp, target))
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                while self._pending:
                    tmp, target = self._pending[0]
                    os.replace(tmp, target)
                    self._pending.pop(0)
        finally:
            for tmp, _ in self._pending:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            self._pending.clear()
