"""The sampler under hostile use: broken models, concurrent runs, changed files, dead ranks.

Each test is a regression test for a fault found by trying to break the sampler (issue 12):
a model that returns NaN, two runs on one output, inputs changed between a run and its
resumption, a rank that never starts or stalls, a full disk. Disk-full tests mount a tiny
tmpfs and need root (they are skipped otherwise).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import _sampler_models as models  # noqa: E402
from _children import child_env, start_cli, wait_for_lines  # noqa: E402

from sampler import ModelError, sample_counts, two_stage_counts  # noqa: E402
from sampler.streams import block_size  # noqa: E402
from topk_bounds.cli import main  # noqa: E402
from topk_bounds.io import read_counts  # noqa: E402

XS = (-0.5, 0.2, 0.75, 1.0, -1.2, 0.0, 0.4, 2.0, -0.3)
LABELS = (0, 1, 2, 2, 0, 1, 1, 2, 0)
ENV = child_env()


def _x(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 1)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(HERE)
    _save_data(tmp_path / "data.pt")
    return tmp_path


def _save_data(path, xs=XS, labels=LABELS):
    torch.save({"inputs": torch.tensor(xs).reshape(-1, 1), "labels": torch.tensor(labels)},
               path)


def _args(out="counts.txt", model="_sampler_models:nearest_centre", n=300, batch=128,
          seed=0, inputs="data.pt", extra=("--no-progress",)):
    return ["sample", "--model", model, "--inputs", inputs, "--sigma", "1.0", "--n", str(n),
            "--batch", str(batch), "--seed", str(seed), "--out", out, *extra]


def _one_line_error(capsys, argv, status=2) -> str:
    """Run the CLI; it must exit with ``status`` and exactly one line on stderr."""
    capsys.readouterr()  # what earlier runs printed
    try:
        got = main(argv)
    except SystemExit as exc:  # argparse's own errors
        got = exc.code
    err = capsys.readouterr().err
    assert got == status, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- non-finite logits are never counted ---------------------------------------------------

@pytest.mark.parametrize("xs, batch_size", [
    ((0.3, 0.6, 0.8), 256),  # 1-D inputs: blocks of 4096 samples, counted a block at a time
    ((0.3, 0.6, 0.8), 5000),  # blocks fit in a batch: counted a batch at a time
])
@pytest.mark.parametrize("everywhere", [False, True])
def test_nan_logits_are_a_model_error_with_the_exact_number_of_nan_samples(
        xs, batch_size, everywhere):
    # The same seed gives the same noise, so the samples above the threshold, counted by a
    # model that says "1 above, 0 below", are exactly those whose logits hold a NaN.
    n = block_size(1) + 300
    kwargs = dict(sigma=1.0, n=n, batch_size=batch_size, seed=3, indices=[5, 7, 9])
    above = sample_counts(models.Above(0.5), _x(*xs), **kwargs)[:, 1]
    assert (above > 0).all() and (above < n).all()
    with pytest.raises(ModelError, match=rf"for {above[0]} of the {n} samples of input 5; "
                                         r"2 more input\(s\)"):
        sample_counts(models.NaNAbove(0.5, everywhere), _x(*xs), **kwargs)


def test_nan_logits_of_one_input_name_its_global_index():
    # Only x = 3 reaches the NaN region (threshold 2.5, sigma 0.1): input index 7.
    x = _x(-1.0, 3.0, 0.0)
    with pytest.raises(ModelError, match=r"for 200 of the 200 samples of input 7; such"):
        sample_counts(models.NaNAbove(2.5), x, sigma=0.1, n=200, batch_size=64, seed=0,
                      indices=[6, 7, 8])


@pytest.mark.parametrize("bad", [float("inf"), -float("inf")])
def test_a_largest_logit_of_plus_or_minus_inf_is_a_model_error(bad):
    def model(x):
        out = torch.zeros(len(x), 3)
        if bad > 0:
            out[:, 1] = bad  # overflow: +inf wins, but which of several would is arbitrary
        else:
            out[:] = bad  # every logit underflowed
        return out

    with pytest.raises(ModelError, match="for 100 of the 100 samples of input 0"):
        sample_counts(model, _x(0.0), sigma=1.0, n=100, batch_size=32, seed=0)


def test_minus_inf_below_a_finite_largest_logit_is_a_masked_class_and_counts():
    def masked(x):
        logits = torch.cat([-x, x, torch.zeros_like(x)], dim=1)
        logits[:, 2] = -float("inf")  # class 2 is never possible
        return logits

    counts = sample_counts(masked, _x(0.0, 5.0), sigma=1.0, n=500, batch_size=100, seed=0)
    assert counts[:, 2].tolist() == [0, 0] and counts.sum(axis=1).tolist() == [500, 500]
    assert counts[1, 1] == 500


def test_two_stage_with_nan_logits_raises_in_the_selection_stage():
    with pytest.raises(ModelError, match="of the 50 samples of input 0"):
        two_stage_counts(models.NaNAbove(-10.0), _x(0.0), sigma=1.0, n0=50, n=100,
                         batch_size=64, seed=0)


def test_bfloat16_logits_that_overflow_are_a_model_error():
    # bfloat16 keeps float32's range; float16 overflows above 65504, as autocast can.
    def half(x):
        return torch.cat([x, -x], dim=1).to(torch.float16) * 1e5

    with pytest.raises(ModelError, match="non-finite logits"):
        sample_counts(half, _x(1.0), sigma=0.1, n=64, batch_size=64, seed=0)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_inputs_are_a_value_error_naming_the_input(value):
    x = _x(0.0, 1.0, 2.0)
    x[1, 0] = value
    with pytest.raises(ValueError, match=r"input 11 \(row 1 of inputs\) holds NaN or inf"):
        sample_counts(models.NearestCentre(), x, sigma=1.0, n=10, batch_size=10, seed=0,
                      indices=[10, 11, 12])


def test_cli_nan_model_is_one_line_and_writes_no_row_of_the_bad_input(workdir, capsys):
    err = _one_line_error(capsys, _args(model="_sampler_models:nan_above"))
    # XS[0] = -0.5 rarely exceeds 0.5 with sigma 1 but does in 300 samples: input 0 is bad.
    assert re.search(r"non-finite logits .* of the 300 samples of input 0", err), err
    lines = (workdir / "counts.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("# topk-bounds sample v2 ")


def test_cli_non_finite_input_is_one_line(workdir, capsys):
    _save_data(workdir / "nan.pt", xs=(0.0, float("nan"), 1.0), labels=(0, 1, 2))
    err = _one_line_error(capsys, _args(inputs="nan.pt"))
    assert "--inputs: input 1 holds NaN or inf" in err
    assert not (workdir / "counts.txt").exists()


# -- one output, one writer ---------------------------------------------------------------

def _start_slow_run(workdir, out="counts.txt"):
    slow = dict(model="_sampler_models:slow_nearest_centre", n=1280, batch=128, out=out)
    proc = start_cli(_args(**slow), workdir, stderr=subprocess.PIPE)
    if wait_for_lines(proc, workdir / out, 2):  # header and a row
        return proc, slow
    proc.kill()
    raise AssertionError(f"the slow run did not start: {proc.stderr.read()}")


def test_a_second_run_on_the_same_output_refuses_while_the_first_runs(workdir, capsys):
    proc, slow = _start_slow_run(workdir)
    try:
        before = (workdir / "counts.txt").read_bytes()
        err = _one_line_error(capsys, _args(**slow))
        assert "counts.txt is being written by another running 'topk-bounds sample'" in err
        assert (workdir / "counts.txt").read_bytes()[:len(before)] == before
    finally:
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    assert main(_args(**dict(slow, out="reference.txt"))) == 0
    assert (workdir / "counts.txt").read_bytes() == (workdir / "reference.txt").read_bytes()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_killed_run_releases_the_lock_and_resumes_to_the_identical_file(workdir, sig):
    proc, slow = _start_slow_run(workdir)
    proc.send_signal(sig)
    status = proc.wait(timeout=30)
    assert status != 0
    if sig == signal.SIGINT:  # Ctrl-C: one line and 130
        assert status == 130 and proc.stderr.read().count("\n") == 1
    assert not [p for p in os.listdir(workdir) if p.startswith(".")]  # no temporary files
    assert main(_args(**slow)) == 0  # the lock is gone with the process
    assert main(_args(**dict(slow, out="reference.txt"))) == 0
    assert (workdir / "counts.txt").read_bytes() == (workdir / "reference.txt").read_bytes()


def test_a_refused_run_does_not_leave_an_empty_file_it_created(workdir, capsys):
    _one_line_error(capsys, _args(model="_sampler_models:nan_above", out="new.txt"))
    # The header was written, so the file stays (and resumes); a run that fails before it
    # writes anything removes the file it created:
    assert (workdir / "new.txt").read_text().count("\n") == 1
    (workdir / "held.txt.n0").write_text("something else\n")
    _one_line_error(capsys, _args(out="held.txt", extra=("--no-progress", "--n0", "5")))
    assert not (workdir / "held.txt").exists()


# -- resuming never mixes data sets or models ----------------------------------------------

def _truncate_to_rows(path, rows: int) -> None:
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(lines[:rows + 1]) + b"\n")


def test_resuming_after_the_inputs_file_changed_in_place_refuses(workdir, capsys):
    assert main(_args()) == 0
    _truncate_to_rows(workdir / "counts.txt", 3)
    before = (workdir / "counts.txt").read_bytes()
    _save_data(workdir / "data.pt", xs=tuple(x + 0.25 for x in XS))  # same labels, new data
    err = _one_line_error(capsys, _args())
    assert "the --inputs file changed since counts.txt was written (its sha256 differs)" in err
    assert (workdir / "counts.txt").read_bytes() == before


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated
def test_resuming_after_the_model_file_changed_in_place_refuses(workdir, capsys):
    torch.jit.script(models.NearestCentre()).save(str(workdir / "model.pt"))
    assert main(_args(model="model.pt")) == 0
    _truncate_to_rows(workdir / "counts.txt", 3)
    torch.jit.script(models.NearestCentre((-1.0, 0.1, 1.5))).save(str(workdir / "model.pt"))
    err = _one_line_error(capsys, _args(model="model.pt"))
    assert "the --model file changed since counts.txt was written" in err


def test_resuming_with_a_factory_whose_weights_differ_refuses(workdir, capsys):
    assert main(_args(model="_sampler_models:random_weights")) == 0
    _truncate_to_rows(workdir / "counts.txt", 3)
    err = _one_line_error(capsys, _args(model="_sampler_models:random_weights"))
    assert "the model's weights differ from those of the run that wrote counts.txt" in err


def test_header_records_hashes_and_stays_one_line_for_a_path_with_a_newline(workdir):
    odd = "my data\nset=1.pt"
    _save_data(workdir / odd)
    assert main(_args(inputs=odd)) == 0
    text = (workdir / "counts.txt").read_text()
    assert text.count("\n") == 1 + len(XS) and text.startswith("# topk-bounds sample v2 ")
    meta = read_counts(workdir / "counts.txt").meta
    assert meta["inputs"] == odd and meta["version"] == "2" and meta["noise"] == "gaussian"
    import hashlib

    assert meta["inputs_sha256"] == hashlib.sha256((workdir / odd).read_bytes()).hexdigest()
    assert set(meta) >= {"model_sha256", "weights_sha256", "stage", "n", "seed", "sigma"}
    full = (workdir / "counts.txt").read_bytes()
    _truncate_to_rows(workdir / "counts.txt", 4)
    assert main(_args(inputs=odd)) == 0  # and it resumes
    assert (workdir / "counts.txt").read_bytes() == full


def test_a_version_1_file_is_refused_by_name(workdir, capsys):
    (workdir / "counts.txt").write_text("# topk-bounds sample v1 stage=estimation n=300 "
                                        "model=_sampler_models:nearest_centre\n1 2 3 0\n")
    err = _one_line_error(capsys, _args())
    assert "was written by version 1 of 'topk-bounds sample'" in err


# -- no tracebacks and no hangs -------------------------------------------------------------

@pytest.mark.parametrize("source, message", [
    ("def broken(:\n    pass\n", r"importing 'bad_module' failed: .*bad_module\.py:1: "
                                 r"SyntaxError"),
    ("raise RuntimeError('no GPU here')\n", r"importing 'bad_module' failed: "
                                            r".*bad_module\.py:1: RuntimeError: no GPU here"),
    ("import sys\nsys.exit('bye')\n", r"importing 'bad_module' failed: .*SystemExit: bye"),
    ("import no_such_dependency_xyz\n", r"importing 'bad_module' failed: .*"
                                        r"ModuleNotFoundError: No module named"),
])
def test_a_model_module_that_fails_to_import_is_one_line(workdir, capsys, source, message):
    (workdir / "bad_module.py").write_text(source)
    err = _one_line_error(capsys, _args(model="bad_module:make"))
    assert re.search(message, err), err


@pytest.mark.parametrize("model, message", [
    ("_sampler_models:exits_when_built", "--model: _sampler_models:exits_when_built() raised "
                                         "SystemExit: 3"),
    ("_sampler_models:exits_on_batches", "the model failed on a batch of shape (128, 1): "
                                         "SystemExit: stop"),
])
def test_a_model_raising_system_exit_is_one_line(workdir, capsys, model, message):
    err = _one_line_error(capsys, _args(model=model))
    assert message in err, err


@pytest.mark.parametrize("change, message", [
    (dict(extra=("--device", "meta")), "--device meta: meta tensors have no values"),
    (dict(extra=("--device", "cuda:7")), "--device cuda:7: "),
    (dict(extra=("--device", "nonsense")), "--device: 'nonsense' is not a torch device"),
    (dict(inputs="."), "--inputs: '.' is a directory, not a .pt file"),
    (dict(out=""), "--out must name a file, got an empty string"),
    (dict(out="newdir/"), "--out 'newdir/' is a directory"),
    (dict(out="."), "--out '.' is a directory"),
    (dict(out="data.pt"), "--out 'data.pt' is the same file as 'data.pt'"),
    (dict(out="counts.npy"), "--out 'counts.npy': sample writes a text count file"),
    (dict(n=str(10**13)), "--n must be at most 1e+12"),
])
def test_cli_bad_arguments_are_one_line(workdir, capsys, change, message):
    err = _one_line_error(capsys, _args(**change))
    assert message in err, err
    assert not (workdir / "newdir").exists()


def test_demo_threads_beyond_the_cpu_count_is_one_line(tmp_path, capsys):
    err = _one_line_error(capsys, ["demo", "--out", str(tmp_path / "o"), "--threads", "100000"])
    assert f"--threads must be at most {os.cpu_count()}" in err
    assert not (tmp_path / "o").exists()


def test_sample_help_describes_the_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sample", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "Sample a torch model's predictions" in out and "--dist-timeout" in out


def test_an_absurd_batch_size_is_a_value_error_not_a_crash():
    x = torch.zeros(1, 10**6)
    with pytest.raises(ValueError, match=r"batch_size=1000000000: cannot allocate"):
        sample_counts(models.NearestCentre(), x, sigma=1.0, n=10**9, batch_size=10**9, seed=0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(device="meta"), "device must be one that holds data, got 'meta'"),
    (dict(n=10**12 + 1), r"n must be at most 1e\+12"),
    (dict(timeout=0), "timeout must be a finite number of seconds > 0, got 0"),
    (dict(timeout="soon"), "timeout must be None, a number of seconds or a timedelta"),
    (dict(indices=[2**63]), r"indices must be < 2\*\*63"),
    # More than 2**32 blocks would reuse seeds within a row (not independent samples):
    (dict(inputs=torch.zeros(1, 4096), n=2**32 * 128 + 1),
     r"n must be at most 549755813888 for inputs of this size"),
])
def test_api_arguments_beyond_their_range_are_value_errors(kwargs, message):
    call = dict(inputs=_x(0.0), sigma=1.0, n=10, batch_size=10, seed=0)
    call.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sample_counts(models.NearestCentre(), **call)


@pytest.mark.parametrize("n0, n, message", [
    (10**12 + 1, 10, r"n0 must be at most 1e\+12"),
    (10, 2**32 * 128 + 1, r"n must be at most 549755813888"),
])
def test_two_stage_checks_both_sizes_before_sampling_either(n0, n, message):
    recorder = models.BatchRecorder()
    with pytest.raises(ValueError, match=message):
        two_stage_counts(recorder, torch.zeros(1, 4096), sigma=1.0, n0=n0, n=n,
                         batch_size=10, seed=0)
    assert recorder.sizes == []  # nothing was sampled


# torch made unimportable, as on a machine without it (a finder that knows no torch).
_NO_TORCH = textwrap.dedent("""
    import sys
    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, NoTorch())
""")


def test_importing_the_api_without_torch_names_the_extra():
    code = _NO_TORCH + "from sampler import sample_counts"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=ENV, cwd=ROOT)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: sampler.sample_counts needs torch")
    assert "pip install 'topk-bounds[torch]'" in last


def test_the_sample_command_without_torch_is_one_line_naming_the_extra(tmp_path):
    code = _NO_TORCH + ("from topk_bounds.cli import main\n"
                        f"sys.exit(main({_args()!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=ENV, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "pip install 'topk-bounds[torch]'" in done.stderr


# -- torch.distributed: a missing or stalled rank ends every rank within the timeout --------

def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, argv, cwd, stall: float = 0.0):
    env = dict(ENV, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), STALL_SECONDS=str(stall))
    return subprocess.Popen([sys.executable, "-m", "topk_bounds.cli", *argv], cwd=cwd,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _finish(proc, limit: float) -> tuple[int, str, float]:
    start = time.monotonic()
    try:
        err = proc.communicate(timeout=limit)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"still running after {limit} s: it hangs") from None
    return proc.returncode, err, time.monotonic() - start


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_a_rank_that_never_starts_ends_the_others_within_the_timeout(workdir):
    argv = _args(extra=("--no-progress", "--dist-timeout", "2"))
    proc = _rank(0, 2, _free_port(), argv, workdir)  # rank 1 is never started
    status, err, _ = _finish(proc, 60)
    assert status == 2 and err.count("\n") == 1, err
    assert "rank 0: torch.distributed did not start within --dist-timeout 2 s" in err, err


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_a_stalled_rank_ends_every_rank_with_one_line_naming_the_timeout(workdir):
    # Rank 1 sleeps 15 s in its first sampling pass; rank 0 waits 6 s for it in the
    # all-reduce, gives up, and rank 1 finds it gone as soon as it wakes. (6 s, not less:
    # the ranks must also start within the timeout of each other, and on a loaded 2-core
    # machine importing torch alone can take a few seconds; 3 s failed there once.)
    argv = _args(model="_sampler_models:stalls_on_rank_one",
                 extra=("--no-progress", "--dist-timeout", "6"))
    port = _free_port()
    procs = [_rank(r, 2, port, argv, workdir, stall=15.0) for r in range(2)]
    results = [_finish(p, 120) for p in procs]
    for rank, (status, err, _) in enumerate(results):
        assert status == 2 and err.count("\n") == 1, (rank, err)
        assert "--dist-timeout is 6 s" in err and f"rank {rank} of 2" in err, err
    assert "did not complete within the process group's timeout" in results[0][1]
    assert results[1][2] > 1.0  # rank 0 was done long before rank 1 woke up
    assert "another rank is gone" in results[1][1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_when_rank_0_cannot_open_the_output_every_rank_stops_at_once(workdir):
    (workdir / "foreign.txt").write_text("not a count file\n")
    argv = _args(out="foreign.txt", extra=("--no-progress", "--dist-timeout", "30"))
    port = _free_port()
    procs = [_rank(r, 2, port, argv, workdir) for r in range(2)]
    results = [_finish(p, 60) for p in procs]
    for rank, (status, err, _) in enumerate(results):
        assert status == 2 and err.count("\n") == 1, (rank, err)
    assert "foreign.txt exists and is not a count file" in results[0][1]
    assert "rank 1: rank 0 could not open the output" in results[1][1]
    assert (workdir / "foreign.txt").read_text() == "not a count file\n"


# -- a full disk ----------------------------------------------------------------------------

@pytest.fixture
def tiny_disk(tmp_path):
    """A 16 KiB tmpfs (root only), removed afterwards."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_sample_on_a_full_disk_is_one_line_and_resumes_to_the_identical_file(
        workdir, tiny_disk, capsys):
    xs = tuple(np.linspace(-2, 2, 500).round(3))
    _save_data(workdir / "many.pt", xs=xs, labels=(0,) * len(xs))
    argv = _args(out=str(tiny_disk / "counts.txt"), inputs="many.pt", n=20, batch=1000)
    filler = tiny_disk / "filler"
    filler.write_bytes(b"x" * 12288)  # 4 KiB left: the file fills it part way through
    err = _one_line_error(capsys, argv)
    assert "counts.txt" in err and "No space left on device" in err, err
    rows = (tiny_disk / "counts.txt").read_bytes().count(b"\n") - 1
    assert 0 < rows < len(xs)
    filler.unlink()
    assert main(argv) == 0
    assert main(_args(out="reference.txt", inputs="many.pt", n=20, batch=1000)) == 0
    assert (tiny_disk / "counts.txt").read_bytes() == (workdir / "reference.txt").read_bytes()


def test_demo_on_a_full_disk_writes_nothing(tiny_disk):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    from sampler.demo import run_demo

    out = tiny_disk / "demo"
    with pytest.raises(OSError, match="No space left on device"):
        run_demo(out, n=50, num_test=4, epochs=1, seed=0)
    assert sorted(os.listdir(tiny_disk)) == []  # neither files nor their temporary copies


def test_demo_refuses_a_file_as_its_output_before_training(tmp_path):
    from sampler.demo import run_demo

    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="out must be a directory"):
        run_demo(tmp_path / "f", n=10, num_test=1, epochs=1)
