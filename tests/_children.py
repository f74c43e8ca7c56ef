"""Child processes for the tests: ``topk-bounds`` run as a process of its own (to be killed
midway, or to hold a lock), two-rank ``torchrun`` jobs, and the truncated files a killed
run can leave (:func:`truncation_points`).

Every child gets :func:`child_env`: the tests directory (for ``_sampler_models``) and the
checkout on ``PYTHONPATH``, and one OpenMP thread.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def child_env(**extra: str) -> dict[str, str]:
    """``os.environ`` with the tests and the checkout on ``PYTHONPATH``, plus ``extra``."""
    path = os.pathsep.join([HERE, ROOT, os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", **extra)


def start_cli(argv, cwd, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    """``python -m topk_bounds.cli *argv`` in ``cwd``, not waited for (stdout discarded)."""
    return subprocess.Popen([sys.executable, "-m", "topk_bounds.cli", *argv], cwd=cwd,
                            env=child_env(), stdout=subprocess.DEVNULL, stderr=stderr,
                            text=True)


def wait_for_lines(proc: subprocess.Popen, path: Path, lines: int, timeout: float = 60) -> bool:
    """Whether ``path`` came to hold ``lines`` complete lines while ``proc`` ran."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.read_bytes().count(b"\n") >= lines:
            return True
        time.sleep(0.005)
    return False


def torchrun(args, cwd, timeout: float = 120) -> subprocess.CompletedProcess:
    """``torch.distributed.run`` with two ranks on this machine; asserts they succeed."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--standalone", *args]
    done = subprocess.run(command, cwd=cwd, env=child_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def truncation_points(data: bytes) -> list[int]:
    """Where a killed writer may have stopped: inside the header, at every line end, and
    inside every line."""
    ends = [i + 1 for i, b in enumerate(data) if b == ord("\n")]
    cuts = {0, 1, ends[0] - 1, len(data) - 1, len(data)}
    for a, b in zip([0] + ends, ends):
        cuts.update({a, (a + b) // 2})
    return sorted(cuts)
