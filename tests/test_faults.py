"""Fault injection for the core command line: signals, a full disk, closed or broken
stdout, concurrent writers. Each test runs ``topk-bounds`` in a subprocess and checks the
promise of docs/cli.md: one line on stderr, the documented exit status, no traceback, and
no half-written or temporary file left behind (SIGKILL excepted, which cannot be caught)."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals and rlimits")

ROOT = Path(__file__).resolve().parents[1]
ROW = " ".join(["0"] * 99) + " 5 99\n"  # c = 100, n = 5, label 99: about 200 bytes


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "topk_bounds.cli", *args]


def _certify(source: str, *extra: str) -> list[str]:
    return _cli("certify", source, "--k", "1", "--sigma", "0.5", "--alpha", "0.001", *extra)


def _temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def _wait_for(predicate, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.02)


def _certify_blocked_on_stdin(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """A ``certify --out`` that has opened its temporary output and waits for more input.

    More than one chunk (4 MiB) of rows goes down a pipe that stays open, so the process
    certifies the first chunk, writes it to its temporary file, and blocks reading the
    second: a signal then always finds it mid-run.
    """
    out = tmp_path / "out" / "r.tsv"
    proc = subprocess.Popen(_certify("/dev/stdin", "--out", str(out)), stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdin.write(ROW.encode() * ((5 << 20) // len(ROW)))
    proc.stdin.flush()
    _wait_for(lambda: out.parent.is_dir() and _temps(out.parent))
    return proc, out


@pytest.mark.parametrize(("signum", "status", "message"), [
    (signal.SIGTERM, 143, "topk-bounds certify: terminated by SIGTERM"),
    (signal.SIGINT, 130, "topk-bounds certify: interrupted"),
    (signal.SIGHUP, 129, "topk-bounds certify: terminated by SIGHUP"),
])
def test_a_signal_mid_run_removes_the_temporary_file_and_exits_with_one_line(
        tmp_path, signum, status, message):
    proc, out = _certify_blocked_on_stdin(tmp_path)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    proc.stdin.close()
    assert proc.returncode == status
    assert err.decode().splitlines() == [message]
    assert not out.parent.exists()  # no file, no temporary, not even the directory made for it


def test_sigkill_leaves_a_temporary_file_that_a_later_run_ignores(tmp_path):
    proc, out = _certify_blocked_on_stdin(tmp_path)
    proc.kill()
    proc.communicate(timeout=60)
    stale = _temps(out.parent)
    assert len(stale) == 1 and stale[0].startswith(".tkb-")  # SIGKILL cannot be caught
    counts = tmp_path / "counts.txt"
    counts.write_text(ROW * 3)
    done = subprocess.run(_certify(str(counts), "--out", str(out)), capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert out.read_text().count("\n") == 5  # header, column names, 3 rows
    assert _temps(out.parent) == stale  # the stale file is neither read nor removed


def test_ctrl_c_while_importing_exits_130_without_a_traceback(tmp_path):
    # -X importtime reports each import as it completes: once numpy is being imported,
    # main's handler is installed and nothing has been written yet.
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "topk_bounds.cli",
                             "certify", "/dev/stdin", "--k", "1", "--sigma", "1", "--alpha",
                             "0.1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    seen = []
    for raw in proc.stderr:
        seen.append(raw.decode())
        if "numpy" in seen[-1]:
            break
    proc.send_signal(signal.SIGINT)
    out, rest = proc.communicate(timeout=60)
    err = "".join(seen) + rest.decode()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.splitlines()[-1] == "topk-bounds certify: interrupted"
    assert out == b""


def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def tiny_disk(tmp_path):
    """A 16 KiB tmpfs (needs root and permission to mount; skipped otherwise)."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "16k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_full_disk_fails_with_one_line_and_keeps_the_old_output(tmp_path, tiny_disk):
    counts = tmp_path / "counts.txt"
    counts.write_text(ROW * 1000)  # about 50 KB of output
    out = tiny_disk / "r.tsv"
    out.write_text("previous run\n")
    proc = subprocess.run(_certify(str(counts), "--out", str(out)), capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"topk-bounds certify: error: {out}: No space left on "
                                        "device"]
    assert out.read_text() == "previous run\n" and _temps(tiny_disk) == []


def test_full_disk_leaves_no_report_file(tmp_path, tiny_disk):
    pytest.importorskip("matplotlib")
    tsv = tmp_path / "r.tsv"
    tsv.write_text("idx\tlabel\tradius\n" + "".join(f"{i}\t0\t{i / 500}\n" for i in range(500)))
    proc = subprocess.run(_cli("report", str(tsv), "--out", str(tiny_disk / "report")),
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "No space left on device" in proc.stderr and proc.stdout == ""
    assert list(tiny_disk.iterdir()) == []  # not even the directory made for it


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so that writes fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_write_that_fails_midway_leaves_no_report_file(tmp_path):
    pytest.importorskip("matplotlib")
    tsv = tmp_path / "r.tsv"
    tsv.write_text("idx\tlabel\tradius\n" + "".join(f"{i}\t0\t{i / 50}\n" for i in range(50)))
    out = tmp_path / "report"
    # the Markdown and LaTeX tables fit in 8 KB, the plots do not
    proc = subprocess.run(_cli("report", str(tsv), "--out", str(out)), capture_output=True,
                          text=True, cwd=ROOT, preexec_fn=_file_size_limit(8000))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "File too large" in proc.stderr and str(out) in proc.stderr
    assert not out.exists()


def test_certify_with_stdout_closed(tmp_path):
    counts = tmp_path / "counts.txt"
    counts.write_text(ROW * 3)
    closed = subprocess.run(_certify(str(counts)), capture_output=False, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, preexec_fn=lambda: os.close(1))
    assert closed.returncode == 2
    assert closed.stderr == ("topk-bounds certify: error: stdout is closed; give --out FILE to "
                             "write the table to a file\n")
    to_file = subprocess.run(_certify(str(counts), "--out", str(tmp_path / "r.tsv")),
                             stderr=subprocess.PIPE, text=True, cwd=ROOT,
                             preexec_fn=lambda: os.close(1))
    assert to_file.returncode == 0 and "Traceback" not in to_file.stderr


def test_certify_into_a_pipe_closed_early_stops_quietly(tmp_path):
    counts = tmp_path / "counts.txt"
    counts.write_text("90 10 0\n" * 100_000)  # about 5 MB of output: more than a pipe holds
    proc = subprocess.Popen(_certify(str(counts)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT)
    assert proc.stdout.readline().startswith(b"# topk-bounds certify")
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == ""


def test_certify_into_a_full_stdout_names_it(tmp_path):
    counts = tmp_path / "counts.txt"
    counts.write_text(ROW * 3)
    with open("/dev/full", "w") as full:
        proc = subprocess.run(_certify(str(counts)), stdout=full, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr == "topk-bounds certify: error: <stdout>: No space left on device\n"


def test_concurrent_writers_leave_one_complete_file(tmp_path):
    counts = tmp_path / "counts.txt"
    counts.write_text(ROW * 3000)
    out = tmp_path / "r.tsv"
    procs = [subprocess.Popen(_certify(str(counts), "--out", str(out)), stderr=subprocess.PIPE,
                              cwd=ROOT) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    for p in procs:
        p.stderr.close()
    reference = subprocess.run(_certify(str(counts)), capture_output=True, text=True, cwd=ROOT)
    assert out.read_text() == reference.stdout
    assert _temps(tmp_path) == []
