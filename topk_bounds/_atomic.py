"""Output files that appear complete or not at all (re-exported by :mod:`topk_bounds.io`).

Every file topk-bounds writes goes to a temporary file in the target's own directory,
named ``.tkb-XXXXXXXX.tmp`` (short, so that any valid target name still fits), and is moved
into place with :func:`os.replace` only once it is complete and flushed to disk.

- A new file gets the mode ``0o666 & ~umask``, like any file a program creates; replacing an
  existing file keeps that file's mode. A path that is a symbolic link is written through:
  the file it points to is replaced and the link stays.
- A target that is a directory, or a path ending in ``/``, is refused before anything is
  written, with an :class:`OSError` that names the target (never the temporary file).
- A target that exists and is not a regular file (``/dev/null``, a FIFO) is written
  directly: renaming onto it would replace the device node or the FIFO itself.
- If the body raises, including ``KeyboardInterrupt`` and the exceptions that
  :mod:`topk_bounds.cli` raises for SIGTERM and SIGHUP, the temporary file is removed and
  directories created for the target are removed again when empty. SIGINT, SIGTERM and
  SIGHUP are held back while a temporary file is created, registered or renamed, so a
  signal cannot slip between those steps. Only SIGKILL (or a crash) can leave a
  ``.tkb-*.tmp`` file behind; nothing ever reads such a file, and it can be deleted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import tempfile
import threading
from pathlib import Path
from typing import IO, Iterator

__all__ = ["atomic_write", "AtomicGroup", "check_output_path", "deferred_signals"]

TEMP_PREFIX = ".tkb-"
TEMP_SUFFIX = ".tmp"

# the signals topk-bounds turns into exceptions (see topk_bounds.cli)
_SIGNALS = {getattr(signal, s) for s in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, s)}
# errors of the write itself, which Python reports without a file name
_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EIO, getattr(errno, "EDQUOT", errno.ENOSPC)}
_umask_lock = threading.Lock()


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold back SIGINT, SIGTERM and SIGHUP for the duration of the block.

    A signal that arrives meanwhile is delivered (and its handler runs) when the block
    ends. A no-op where :func:`signal.pthread_sigmask` does not exist.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:  # the portable way changes the umask for a moment
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def check_output_path(path: str | os.PathLike) -> Path:
    """The file that writing ``path`` replaces, after checking that it can be a file.

    Raises
    ------
    ValueError
        If ``path`` is empty.
    OSError
        Naming ``path``: it ends with ``/`` or is a directory (``IsADirectoryError``), a
        component of its directory is a file (``NotADirectoryError``), or its name is longer
        than the file system allows (``ENAMETOOLONG``).

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> check_output_path(d + "/new/")
    Traceback (most recent call last):
    ...
    IsADirectoryError: [Errno 21] names a directory (it ends with '/'); give a file name: '.../new/'
    """
    raw = os.fsdecode(os.fspath(path))
    if not raw:
        raise ValueError("the output path is empty; give a file name")
    if raw.endswith("/") or raw.endswith(os.sep):
        raise IsADirectoryError(errno.EISDIR, "names a directory (it ends with '/'); give a file name",
                                raw)
    target = Path(os.path.realpath(raw)) if os.path.islink(raw) else Path(raw)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "Is a directory; give a file name", raw)
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{parent} is not a directory", raw)
            try:
                name_max = os.pathconf(parent, "PC_NAME_MAX")
            except (OSError, ValueError, AttributeError):
                name_max = 255
            for part in target.relative_to(parent).parts:
                if len(os.fsencode(part)) > name_max:
                    raise OSError(errno.ENAMETOOLONG,
                                  f"File name too long ({len(os.fsencode(part))} bytes; at most "
                                  f"{name_max} here)", raw)
            break
    return target


def _make_dirs(directory: Path) -> list[Path]:
    """Create ``directory`` and missing parents; return those created, deepest first."""
    created = []
    for d in [directory, *directory.parents]:
        if d.exists():
            break
        created.append(d)
    directory.mkdir(parents=True, exist_ok=True)
    return created


def _remove_empty(dirs: list[Path]) -> None:
    for d in dirs:  # deepest first
        with contextlib.suppress(OSError):
            d.rmdir()


class _Pending:
    """One temporary file on its way to becoming ``target``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.name = os.fsdecode(os.fspath(path))
        self.target = check_output_path(path)
        self.tmp: str | None = None
        self.fd: int | None = None
        self.created: list[Path] = []
        try:
            st = os.stat(self.target)
        except FileNotFoundError:
            st = None
        self.direct = st is not None and not stat.S_ISREG(st.st_mode)
        if self.direct:  # /dev/null, a FIFO: renaming onto it would replace the node itself
            return
        mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask()
        self.created = _make_dirs(self.target.parent)
        try:
            with deferred_signals():
                self.fd, self.tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX,
                                                     dir=self.target.parent)
            os.fchmod(self.fd, mode)
        except OSError as exc:
            self.discard()
            raise OSError(exc.errno, exc.strerror, self.name) from None
        except BaseException:
            self.discard()
            raise

    def open(self, mode: str) -> IO:
        encoding = None if "b" in mode else "utf-8"
        if self.direct:
            return open(self.target, mode, encoding=encoding)
        fd, self.fd = self.fd, None
        return os.fdopen(fd, mode, encoding=encoding)

    def commit(self) -> None:
        if self.direct:
            return
        try:
            os.replace(self.tmp, self.target)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, self.name) from None
        self.tmp = None

    def discard(self) -> None:
        with deferred_signals():
            if self.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self.fd)
                self.fd = None
            if self.tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.tmp)
                self.tmp = None
            _remove_empty(self.created)

    def named(self, exc: BaseException) -> BaseException:
        """A write error (disk full) that Python raised without a file name gets ours."""
        if isinstance(exc, OSError) and exc.filename is None and exc.errno in _WRITE_ERRNOS:
            return OSError(exc.errno, exc.strerror, self.name)
        return exc

    @contextlib.contextmanager
    def written(self, mode: str) -> Iterator[IO]:
        """The file open for the ``with`` body; flushed and synced to disk when it ends.
        A write error without a file name is raised with the target's name."""
        try:
            with self.open(mode) as fh:
                yield fh
                fh.flush()
                if not self.direct:
                    os.fsync(fh.fileno())
        except BaseException as exc:
            named = self.named(exc)
            if named is not exc:
                raise named from None
            raise


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path`` and move it into place only on success.

    If the body raises (an error, Ctrl-C, SIGTERM), the temporary file is removed and
    ``path`` is left as it was (absent, or with its previous contents). The target is
    checked first (:func:`check_output_path`), so a directory or an over-long name fails
    before the body runs. See the module docstring for modes and signals.

    Examples
    --------
    >>> import os, stat, tempfile
    >>> d = tempfile.mkdtemp()
    >>> p = os.path.join(d, "out.txt")
    >>> with atomic_write(p) as fh:
    ...     _ = fh.write("done\\n")
    >>> open(p).read(), os.listdir(d)
    ('done\\n', ['out.txt'])
    >>> os.chmod(p, 0o640)
    >>> with atomic_write(p) as fh:
    ...     _ = fh.write("again\\n")
    >>> oct(stat.S_IMODE(os.stat(p).st_mode))  # the replaced file's mode is kept
    '0o640'
    """
    pending = _Pending(path)
    try:
        with pending.written(mode) as fh:
            yield fh
        with deferred_signals():
            pending.commit()
    except BaseException:
        pending.discard()
        raise
    if not pending.direct:
        _fsync_dir(pending.target.parent)


class AtomicGroup:
    """Several output files that appear together or not at all.

    Each :meth:`open` writes to a temporary file beside its target; leaving the ``with``
    block normally moves every one into place (in the order opened, with SIGINT/SIGTERM
    held back meanwhile), and an exception removes them all, leaving every target as it
    was. Validate and compute everything before the block: the renames at its end are the
    only step that touches the targets. (If a rename itself fails, which needs the
    directory to change under the group's feet, the files renamed before it stay.)

    Opening the same target twice in one group is an error: it would silently keep only
    the second file.

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
    ...     _ = group.write_text(os.path.join(d, "a.txt"), "a")
    ...     _ = group.write_bytes(os.path.join(d, "b.bin"), b"b")
    >>> sorted(os.listdir(d))
    ['a.txt', 'b.bin']
    """

    def __init__(self) -> None:
        self._pending: list[_Pending] = []
        self._targets: set[str] = set()

    def __enter__(self) -> "AtomicGroup":
        return self

    @contextlib.contextmanager
    def open(self, path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
        """A file that becomes ``path`` when the group succeeds (see the class)."""
        key = os.path.normcase(os.path.abspath(check_output_path(path)))
        if key in self._targets:
            raise ValueError(f"{os.fsdecode(os.fspath(path))} is written twice in one group")
        pending = _Pending(path)
        self._pending.append(pending)
        self._targets.add(key)
        with pending.written(mode) as fh:
            yield fh

    def write_text(self, path: str | os.PathLike, text: str) -> Path:
        """Add a file holding ``text`` (UTF-8) to the group; returns ``Path(path)``."""
        with self.open(path) as fh:
            fh.write(text)
        return Path(path)

    def write_bytes(self, path: str | os.PathLike, data: bytes) -> Path:
        """Add a file holding ``data`` to the group; returns ``Path(path)``."""
        with self.open(path, "wb") as fh:
            fh.write(data)
        return Path(path)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                directories = {p.target.parent for p in self._pending if not p.direct}
                with deferred_signals():
                    while self._pending:
                        self._pending[0].commit()
                        self._pending.pop(0)
                for directory in directories:
                    _fsync_dir(directory)
        finally:
            for pending in reversed(self._pending):
                pending.discard()
            self._pending.clear()
