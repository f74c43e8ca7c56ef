"""Count files: reading them (whole or in chunks), their header line, and atomic outputs.

A count file holds one input per line: ``c`` whitespace-separated non-negative integer
counts (how often the base classifier predicted each label under Gaussian noise), then the
true label, an integer in ``0 .. c-1``. Blank lines and lines starting with ``#`` are
ignored; the first ``# topk-bounds KIND vN ...`` line before the first row is the file's
header (:func:`format_header`, :func:`is_header`). This is the format of the paper's released data and of
``topk-bounds sample``. Counts are ASCII decimal integers (an optional ``+`` allowed), every
count and every row's total at most :data:`topk_bounds.limits.N_MAX`.

A count file may also be a ``.npy`` array (recognised by its content, whatever its name)
of shape ``(N, c + 1)`` and an integer dtype: the counts, then the label, in each row
(:func:`save_counts` writes one). It is read memory-mapped, chunk by chunk.

:func:`iter_counts` reads either kind in chunks of bounded size, so memory does not grow
with the number of rows; :func:`read_counts` reads the whole file. Both check every row
and report the first bad one as ``"FILE: line 7: ..."`` (``"FILE: array row 6: ..."``,
counting from 0, for ``.npy`` files).

Output files are written atomically (:func:`atomic_write`, :class:`AtomicGroup`; see
:mod:`topk_bounds._atomic` for modes, signals and temporary names).
"""

from __future__ import annotations

import io as _stdio
import math
import os
import re
import urllib.parse
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from ._atomic import AtomicGroup, atomic_write, check_output_path, deferred_signals
from .limits import N_MAX

__all__ = ["CountFile", "CountReader", "iter_counts", "read_counts", "save_counts",
           "format_count_row", "format_header", "parse_header", "is_header", "check_fixed_n",
           "check_not_input", "atomic_write", "AtomicGroup", "check_output_path",
           "deferred_signals", "DEFAULT_CHUNK_BYTES"]

#: Bytes of a text count file parsed at once by :func:`iter_counts` (whole lines; a longer
#: line is read whole).
DEFAULT_CHUNK_BYTES = 4 << 20


@dataclass(frozen=True, repr=False)
class CountFile:
    """The contents of a count file, or of one chunk of it (:func:`iter_counts`).

    Attributes
    ----------
    counts : ndarray of int64, shape (N, c)
        Per-label counts, one row per input.
    labels : ndarray of int64, shape (N,)
        The label of each input (the last column of the file).
    lines : ndarray of int64, shape (N,)
        Where each row came from, counting from 1: its line number in a text file, its row
        number (array row + 1) in a ``.npy`` file.
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


# -- checking rows ----------------------------------------------------------------------------

_INT = re.compile(r"[+-]?[0-9]+\Z")


def _row_error(values: list[int], width: int | None) -> str | None:
    """What is wrong with one row (counts, then label) as Python ints; None if it is valid.

    The one definition of a valid row: every reader's fast path defers to it for the
    message of the first bad row, so all paths word their errors alike.
    """
    if len(values) < 3:
        return f"expected at least 2 counts and a label, got {len(values)} field(s)"
    if width is not None and len(values) != width:
        return (f"has {len(values)} fields but earlier rows have {width} "
                "(every row needs the same number of counts)")
    *counts, label = values
    if min(counts) < 0:
        return f"count {min(counts)} is negative"
    if max(counts) > N_MAX:
        return (f"count {max(counts)} exceeds the largest supported number of samples, "
                f"N_MAX = 10**12")
    if not 0 <= label < len(counts):
        return f"label {label} is outside 0..{len(counts) - 1}"
    total = sum(counts)
    if total == 0:
        return "the counts sum to n = 0 (no samples)"
    if total > N_MAX:
        return f"the counts sum to n = {total}, above the largest supported n, N_MAX = 10**12"
    return None


def _row_sums(counts: np.ndarray) -> np.ndarray:
    """Row totals of int64 counts that cannot wrap around: each >= 0 and <= N_MAX + 1.

    Rows holding a negative count or one above N_MAX may get any value: they are rejected
    by the count checks anyway. Up to 2**23 columns a plain sum cannot overflow
    (2**23 * 10**12 < 2**63); wider rows are summed in blocks, clipped between blocks.
    """
    block = 1 << 23
    if counts.shape[1] <= block:
        return counts.sum(axis=1)
    total = np.zeros(counts.shape[0], dtype=np.int64)
    for start in range(0, counts.shape[1], block):
        part = np.clip(counts[:, start:start + block], 0, N_MAX + 1).sum(axis=1)
        total = np.minimum(total + part, N_MAX + 1)
    return total


def _first_bad_row(table: np.ndarray, width: int | None, nonnegative: bool = False) -> int | None:
    """Index of the first invalid row of an integer table (counts, then label), or None.

    ``nonnegative``: the caller knows that no value is negative (a text chunk of digits).
    Counts are compared with N_MAX before any sum, so nothing wraps around: the rows before
    the first out-of-range count are summed, and that row is bad itself.
    """
    n_rows, n_cols = table.shape
    if n_cols < 3 or (width is not None and n_cols != width):
        return 0
    counts, labels = table[:, :-1], table[:, -1]
    signed = table.dtype.kind == "i" and not nonnegative
    limit = n_rows
    if counts.max() > N_MAX or (signed and counts.min() < 0):
        out_of_range = (counts > N_MAX).any(axis=1)
        if signed:
            out_of_range |= (counts < 0).any(axis=1)
        limit = int(np.argmax(out_of_range))
    head, head_labels = counts[:limit], labels[:limit]
    bad = head_labels >= n_cols - 1
    if table.dtype.kind == "i":
        bad |= head_labels < 0
    sums = _row_sums(head.astype(np.int64, copy=False))
    bad |= (sums == 0) | (sums > N_MAX)
    if bad.any():
        return int(np.argmax(bad))
    return limit if limit < n_rows else None


# -- the reader -------------------------------------------------------------------------------

_FAST_BYTES = b"0123456789 \t\n"  # a chunk of only these is parsed by numpy.loadtxt
_NEWLINES = re.compile(rb"\r\n|\r|\n")
_NPY_MAGIC = b"\x93NUMPY"


class CountReader:
    """A count file read chunk by chunk; made by :func:`iter_counts`.

    Iterating yields :class:`CountFile` chunks of consecutive rows, in file order. The
    header is read when the reader is made, so :attr:`meta` is known before the first
    chunk. Use it as a context manager (or call :meth:`close`) to close the file.

    Attributes
    ----------
    path : str
        The file, as given.
    meta : dict of str to str
        The header's fields (see :class:`CountFile`).
    format : {"text", "npy"}
    classes : int or None
        The number of labels c, once known (at once for ``.npy`` files, after the first
        chunk for text).
    rows : int
        Rows yielded so far.
    """

    def __init__(self, path: str | os.PathLike, *, chunk_bytes: int | None = None):
        if chunk_bytes is None:
            chunk_bytes = DEFAULT_CHUNK_BYTES
        if not (isinstance(chunk_bytes, int) and chunk_bytes >= 1):
            raise ValueError(f"chunk_bytes must be an integer >= 1, got {chunk_bytes!r}")
        self.path = os.fsdecode(os.fspath(path))
        self.meta: dict[str, str] = {}
        self.classes: int | None = None
        self.rows = 0
        self._chunk_bytes = chunk_bytes
        self._fh = open(path, "rb")
        self._npy = None
        try:
            head = self._fh.read(max(chunk_bytes, 8))
            if head.startswith(_NPY_MAGIC):
                self.format = "npy"
                self._fh.close()
                self._open_npy()
            else:
                self.format = "text"
                self._head, self._offset, self._line = self._preamble(head)
        except BaseException:
            self.close()
            raise

    # -- context manager ------------------------------------------------------------------
    def __enter__(self) -> "CountReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._fh.close()

    def __repr__(self) -> str:
        return (f"CountReader({self.path!r}, format={self.format!r}, classes={self.classes}, "
                f"rows read={self.rows})")

    def __iter__(self) -> Iterator[CountFile]:
        chunks = self._npy_chunks() if self.format == "npy" else self._text_chunks()
        for chunk in chunks:
            self.rows += chunk.labels.size
            yield chunk
        if self.rows == 0:
            raise ValueError(f"{self.path}: the file holds no count rows")

    def _where(self, line: int) -> str:
        return f"{self.path}: line {line}"

    # -- text files -----------------------------------------------------------------------
    def _sniff(self, head: bytes) -> None:
        """Refuse files that are not text, saying what they look like."""
        where = self._where(1)
        if head.startswith(b"\x1f\x8b"):
            raise ValueError(f"{where}: not a text count file: it is gzip-compressed "
                             "(decompress it first, e.g. with gunzip)")
        if head.startswith(b"PK\x03\x04"):
            raise ValueError(f"{where}: not a text count file: it is a zip archive (an .npz?); "
                             "give a text file, or a .npy array of shape (N, c + 1)")
        if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(head) > 1 and b"\x00" in head[:2]):
            raise ValueError(f"{where}: not a text count file: it is UTF-16 text; convert it "
                             "to UTF-8 or ASCII (e.g. iconv -f UTF-16 -t UTF-8)")
        nul = head.find(b"\x00")
        if nul >= 0:
            line = head.count(b"\n", 0, nul) + 1
            raise ValueError(f"{self._where(line)}: not a text count file: it holds a NUL "
                             "byte (binary data)")

    def _preamble(self, head: bytes) -> tuple[bytes, int, int]:
        """Skip leading blank and comment lines, reading the header among them.

        Returns the bytes read so far, the offset of the first data line in them and the
        number of lines skipped.
        """
        self._sniff(head)
        offset = 3 if head.startswith(b"\xef\xbb\xbf") else 0  # a UTF-8 byte order mark
        line = 0
        while True:
            end = head.find(b"\n", offset)
            if end < 0:
                more = self._fh.read(self._chunk_bytes)
                if more:
                    head = head[offset:] + more
                    offset = 0
                    continue
                end = len(head)
            text = head[offset:end].strip()
            if text and not text.startswith(b"#"):
                return head, offset, line
            if end == len(head):  # the last line, and no data: an empty file
                return head, len(head), line + (1 if text else 0)
            line += 1
            if not self.meta and is_header(text.decode("utf-8", "replace")):
                try:
                    self.meta = parse_header(text.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as exc:
                    raise ValueError(f"{self._where(line)}: {exc}") from None
            offset = end + 1

    def _text_chunks(self) -> Iterator[CountFile]:
        line, width = self._line, None
        pending = [self._head[self._offset:]]  # bytes read but not parsed: no complete line
        self._head = b""
        while True:
            block = self._fh.read(self._chunk_bytes)
            if block:
                cut = block.rfind(b"\n")
                if cut < 0:  # a line longer than a chunk: read on
                    pending.append(block)
                    continue
                pending.append(block[:cut + 1])
                piece, pending = b"".join(pending), [block[cut + 1:]]
            else:
                piece = b"".join(pending)
                if not piece:
                    return
                pending = []
                if not piece.endswith(b"\n"):
                    piece += b"\n"
            table, lines, used = self._parse(piece, line, width)
            line += used
            if table is not None:
                width = table.shape[1]
                self.classes = width - 1
                yield CountFile(counts=np.ascontiguousarray(table[:, :-1]),
                                labels=np.ascontiguousarray(table[:, -1]), lines=lines,
                                meta=self.meta)
            if not block:
                return

    def _parse(self, piece: bytes, line: int, width: int | None, filter_lines: bool = False):
        """Rows of ``piece`` (whole lines after line number ``line``): table, lines, lines used.

        Chunks of digits, blanks and newlines go to numpy.loadtxt (with comment and blank
        lines taken out first, if any); anything else, or a table of unexpected shape,
        goes to :meth:`_parse_exact`, the reference. A row that fails a check is worded
        by :func:`_row_error`, so every path gives the same message.
        """
        if b"\r" in piece:
            piece = piece.replace(b"\r\n", b"\n")
            if b"\r" in piece:  # a lone carriage return ends a line too
                return self._parse_exact(piece, line, width)
        n_lines = piece.count(b"\n")
        keep = None
        clean = piece
        if filter_lines or piece.translate(None, _FAST_BYTES) or b"\n\n" in piece \
                or piece.startswith(b"\n"):  # comments, blank lines, or something unusual
            parts = piece.split(b"\n")[:-1]
            keep = [i for i, p in enumerate(parts) if (s := p.strip()) and not s.startswith(b"#")]
            if not keep:
                return None, None, n_lines
            clean = b"\n".join([parts[i] for i in keep]) + b"\n"
            if clean.translate(None, _FAST_BYTES):
                return self._parse_exact(piece, line, width)
        try:
            with warnings.catch_warnings():  # "input contained no data": whitespace-only lines
                warnings.simplefilter("ignore")
                table = np.loadtxt(_stdio.BytesIO(clean), dtype=np.int64, ndmin=2, comments=None)
        except ValueError:  # ragged rows, or a number too large for int64
            return self._parse_exact(piece, line, width)
        if table.shape[0] != (n_lines if keep is None else len(keep)):
            if keep is None:  # lines of blanks only, which loadtxt skipped
                return self._parse(piece, line, width, filter_lines=True)
            return self._parse_exact(piece, line, width)
        offsets = np.arange(n_lines, dtype=np.int64) if keep is None else np.array(keep, np.int64)
        bad = _first_bad_row(table, width, nonnegative=True)
        if bad is not None:
            message = _row_error(table[bad].tolist(), width)
            raise ValueError(f"{self._where(line + 1 + int(offsets[bad]))}: {message}")
        return table, line + 1 + offsets, n_lines

    def _parse_exact(self, piece: bytes, line: int, width: int | None):
        """The reference parser, one Python line at a time (used for unusual chunks)."""
        rows: list[list[int]] = []
        lines: list[int] = []
        parts = _NEWLINES.split(piece)
        if parts and parts[-1] == b"":
            parts.pop()
        for i, raw in enumerate(parts):
            lineno = line + 1 + i
            stripped = raw.strip()
            if not stripped or stripped.startswith(b"#"):
                continue
            if b"\x00" in raw:
                raise ValueError(f"{self._where(lineno)}: not a text count file: it holds a NUL "
                                 "byte (binary data)")
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                raise ValueError(f"{self._where(lineno)}: not a text count file: byte "
                                 f"0x{raw[exc.start]:02x} is not UTF-8 text") from None
            if not text or text.startswith("#"):
                continue
            fields = text.split()
            bad = next((f for f in fields if not _INT.match(f)), None)
            if bad is not None:
                raise ValueError(f"{self._where(lineno)}: {bad!r} is not an integer")
            values = [int(f) for f in fields]
            message = _row_error(values, width)
            if message is not None:
                raise ValueError(f"{self._where(lineno)}: {message}")
            width = len(values)
            rows.append(values)
            lines.append(lineno)
        if not rows:
            return None, None, len(parts)
        return np.array(rows, dtype=np.int64), np.array(lines, dtype=np.int64), len(parts)

    # -- .npy files -----------------------------------------------------------------------
    def _open_npy(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(fh)
                offset = fh.tell()
        except ValueError as exc:
            raise ValueError(f"{self.path}: not a readable .npy count file ({exc})") from None
        if len(shape) != 2 or shape[1] < 3:
            raise ValueError(f"{self.path}: a .npy count file must have shape (N, c + 1) with "
                             f"c >= 2 (the counts, then the label), got shape {shape}")
        if dtype.kind not in "iu":
            raise ValueError(f"{self.path}: a .npy count file must hold integers, got dtype "
                             f"{dtype}")
        if fortran and shape[0] > 1:
            raise ValueError(f"{self.path}: a .npy count file must be stored row by row (C "
                             "order), got Fortran order; save it with numpy.ascontiguousarray")
        self._npy = (shape, dtype, offset)
        self.classes = shape[1] - 1

    def _npy_chunks(self) -> Iterator[CountFile]:
        # Each chunk is read into its own buffer (not a memory map of the whole file, whose
        # pages would stay resident as the rows are read): memory stays flat in N.
        (rows, cols), dtype, offset = self._npy
        step = max(1, self._chunk_bytes // (cols * dtype.itemsize))
        for start in range(0, rows, step):
            m = min(step, rows - start)
            block = np.fromfile(self.path, dtype=dtype, count=m * cols,
                                offset=offset + start * cols * dtype.itemsize)
            if block.size != m * cols:
                raise ValueError(f"{self.path}: the .npy file is truncated (its header says "
                                 f"{rows} rows, array row {start + block.size // cols} is "
                                 "missing)")
            block = block.reshape(m, cols)
            bad = _first_bad_row(block, None)
            if bad is not None:
                message = _row_error(block[bad].tolist(), None)
                raise ValueError(f"{self.path}: array row {start + bad}: {message}")
            table = block.astype(np.int64, copy=False)
            yield CountFile(counts=np.ascontiguousarray(table[:, :-1]),
                            labels=np.ascontiguousarray(table[:, -1]),
                            lines=np.arange(start + 1, start + 1 + table.shape[0], dtype=np.int64),
                            meta=self.meta)


def iter_counts(path: str | os.PathLike, *, chunk_bytes: int | None = None) -> CountReader:
    """Read a count file chunk by chunk, validating every row; memory stays bounded.

    Parameters
    ----------
    path : str or path-like
        A text count file, or a ``.npy`` array of shape (N, c + 1) (see the module).
    chunk_bytes : int, optional
        About how many bytes of the file each chunk holds (:data:`DEFAULT_CHUNK_BYTES`
        by default).

    Returns
    -------
    CountReader
        Iterate over it for :class:`CountFile` chunks; ``reader.meta`` holds the header.

    Raises
    ------
    ValueError
        As for :func:`read_counts`; raised when the chunk holding the bad row is reached.
    OSError
        If the file cannot be read.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> p = os.path.join(d, "counts.txt")
    >>> _ = open(p, "w").write("# topk-bounds sample v1 n=100\\n90 7 3 0\\n1 98 1 1\\n5 5 90 2\\n")
    >>> with iter_counts(p, chunk_bytes=10) as reader:
    ...     print(reader.meta["n"], [chunk.lines.tolist() for chunk in reader])
    100 [[2, 3], [4]]
    """
    return CountReader(path, chunk_bytes=chunk_bytes)


def read_counts(path: str | os.PathLike) -> CountFile:
    """Read a count file, validating every row.

    Parameters
    ----------
    path : str or path-like
        The file to read: text, or ``.npy`` (see the module docstring).

    Returns
    -------
    CountFile
        The counts, labels and source line numbers.

    Raises
    ------
    ValueError
        With a message of the form ``"FILE: line 2: ..."`` for an empty file, a negative or
        non-integer count, a count or row total above :data:`~topk_bounds.limits.N_MAX`, a
        ragged row, a label outside ``0 .. c-1``, a row whose counts sum to 0, or a file
        that is not text (compressed, UTF-16, binary).
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
    with iter_counts(path) as reader:
        chunks = list(reader)
        meta = reader.meta
    if len(chunks) == 1:
        return chunks[0]
    return CountFile(counts=np.concatenate([c.counts for c in chunks]),
                     labels=np.concatenate([c.labels for c in chunks]),
                     lines=np.concatenate([c.lines for c in chunks]), meta=meta)


def save_counts(path: str | os.PathLike, counts, labels) -> Path:
    """Write counts and labels as a ``.npy`` count file of shape (N, c + 1), atomically.

    The rows are checked as :func:`read_counts` checks them, so the file always reads back.

    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "counts.npy")
    >>> _ = save_counts(p, [[90, 7, 3], [1, 98, 1]], [0, 1])
    >>> read_counts(p).counts.tolist()
    [[90, 7, 3], [1, 98, 1]]
    >>> save_counts(p, [[90, 7, 3], [0, 0, 0]], [0, 1])
    Traceback (most recent call last):
    ...
    ValueError: counts[1], labels[1]: the counts sum to n = 0 (no samples)
    """
    counts, labels = np.asarray(counts), np.asarray(labels)
    if counts.ndim != 2 or counts.shape[1] < 2 or counts.dtype.kind not in "iu":
        raise ValueError(f"counts must be an integer array of shape (N, c) with c >= 2, got "
                         f"shape {counts.shape} and dtype {counts.dtype}")
    if labels.shape != (counts.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be {counts.shape[0]} integers, got shape {labels.shape} "
                         f"and dtype {labels.dtype}")
    if counts.shape[0] == 0:
        raise ValueError("counts holds no rows")
    # compare in the arrays' own dtypes first: a cast could wrap a uint64 count
    bad = (counts > N_MAX).any(axis=1) | (labels >= counts.shape[1])
    if counts.dtype.kind == "i":
        bad |= (counts < 0).any(axis=1)
    if labels.dtype.kind == "i":
        bad |= labels < 0
    sums = _row_sums(counts[~bad].astype(np.int64))
    bad[~bad] = (sums == 0) | (sums > N_MAX)
    if bad.any():
        i = int(np.argmax(bad))
        message = _row_error([int(v) for v in counts[i]] + [int(labels[i])], None)
        raise ValueError(f"counts[{i}], labels[{i}]: {message}")
    table = np.column_stack([counts.astype(np.int64), labels.astype(np.int64)])
    with atomic_write(path, "wb") as fh:
        np.save(fh, table, allow_pickle=False)
    return Path(path)


def format_count_row(counts, label: int) -> str:
    """One line of a count file: the counts, then the label, newline-terminated.

    >>> format_count_row([5, 0, 95], 2)
    '5 0 95 2\\n'
    """
    return " ".join(str(int(v)) for v in counts) + f" {int(label)}\n"


def check_fixed_n(meta: Mapping[str, str], path: str | os.PathLike) -> None:
    """Refuse a count file sampled adaptively (header ``mode=adaptive``).

    Counts gathered until a stopping rule fired are not binomial with a fixed n, so the
    fixed-n certificates of :func:`topk_bounds.certify` are void for them (optional
    stopping): they need a sequential procedure instead.

    >>> check_fixed_n({"kind": "sample", "mode": "adaptive"}, "c.txt")
    Traceback (most recent call last):
    ...
    ValueError: c.txt was sampled adaptively (header mode=adaptive): fixed-n certificates ...
    """
    if meta.get("mode", "fixed") != "fixed":
        raise ValueError(f"{os.fsdecode(os.fspath(path))} was sampled adaptively (header "
                         f"mode={meta['mode']}): fixed-n certificates are void under optional "
                         "stopping; its rows already hold the adaptive decisions (topk-bounds report "
                         f"{os.fsdecode(os.fspath(path))} summarises them)")


def sampling_delta(meta: Mapping[str, str], path: str | os.PathLike, *, sigma: float,
                   delta: float | None = None) -> float:
    """What a count file's header commits its certificates to: the sampler's delta.

    A file written by ``topk-bounds sample`` records the noise level it was sampled at
    and, for exact discrete noise (``noise=discrete``), the total-variation distance
    ``delta`` per noisy sample between what was sampled and the Gaussian-smoothed
    classifier (``docs/soundness.md``). Certifying at another sigma would overstate
    every radius by the ratio, so a ``sigma`` that differs from the header's is refused.
    The delta to widen every bound by (:func:`topk_bounds.certify`) is the header's;
    ``delta`` (``certify --delta``) gives it for a file that records none, such as a
    ``.npy`` array or a file from another tool, and must agree with a header that does.

    >>> sampling_delta({"kind": "sample", "sigma": "0.25", "noise": "discrete",
    ...                 "delta": "6.7e-14"}, "c.txt", sigma=0.25)
    6.7e-14
    >>> sampling_delta({}, "c.npy", sigma=0.25, delta=6.7e-14)  # no header: as given
    6.7e-14
    >>> sampling_delta({"kind": "sample", "sigma": "0.25"}, "c.txt", sigma=0.5)
    Traceback (most recent call last):
    ...
    ValueError: c.txt was sampled with sigma = 0.25 (its header), not --sigma 0.5: ...
    """
    name = os.fsdecode(os.fspath(path))
    recorded = meta.get("sigma")
    if recorded is not None:
        try:
            header_sigma = float(recorded)
        except ValueError:
            raise ValueError(f"{name}: its header's sigma={recorded!r} is not a number") from None
        if header_sigma != sigma:
            raise ValueError(f"{name} was sampled with sigma = {header_sigma!r} (its header), not "
                             f"--sigma {sigma!r}: a radius certified at another noise level "
                             "than the counts' would be wrong")
    text = meta.get("delta")
    if text is None:
        if delta is not None:
            return delta
        if meta.get("noise") == "discrete":
            raise ValueError(f"{name}: its header says noise=discrete but records no delta, "
                             "so its certificates cannot account for the sampler (give --delta)")
        return 0.0
    try:
        recorded_delta = float(text)
    except ValueError:
        recorded_delta = math.nan
    if not 0.0 <= recorded_delta < 1.0:
        raise ValueError(f"{name}: its header's delta={text!r} must be a number in [0, 1)")
    if delta is not None and delta != recorded_delta:
        raise ValueError(f"{name}: its header records delta={text}, not --delta {delta!r}; "
                         "leave --delta out for a file that records it")
    return recorded_delta


def check_not_input(out: str | os.PathLike, inputs, option: str = "--out") -> None:
    """Refuse an output path that is one of the input files (or a link to one).

    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "counts.txt")
    >>> _ = open(p, "w").write("1 2 0\\n")
    >>> check_not_input(p, [p])
    Traceback (most recent call last):
    ...
    ValueError: --out .../counts.txt is the input file .../counts.txt; writing it would destroy the input
    """
    out_name = os.fsdecode(os.fspath(out))
    for item in inputs:
        if item is None:
            continue
        name = os.fsdecode(os.fspath(item))
        try:
            same = os.path.samefile(out_name, name)
        except OSError:  # one of them does not exist: they cannot be the same file
            same = False
        if same:
            raise ValueError(f"{option} {out_name} is the input file {name}; writing it would "
                             "destroy the input")


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


_HEADER_START = re.compile(r"# topk-bounds [A-Za-z_]\w* v[0-9]+( |$)")


def is_header(line: str) -> bool:
    """Whether a line has the form of a header, ``# topk-bounds KIND vN ...``.

    Readers parse such a line with :func:`parse_header` (a malformed field is then an
    error); any other ``#`` line, ``# topk-bounds demo: ...`` included, is a comment.

    >>> is_header("# topk-bounds sample v1 n=100"), is_header("# topk-bounds demo: digits")
    (True, False)
    """
    return _HEADER_START.match(line.rstrip("\r\n")) is not None


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
