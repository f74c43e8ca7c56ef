"""Tests of ``topk-bounds sample`` (sampler.cli): the file, resuming, errors."""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import _sampler_models as models  # noqa: E402
from _children import start_cli, truncation_points, wait_for_lines  # noqa: E402

from sampler import sample_counts, two_stage_counts  # noqa: E402
from topk_bounds.cli import main  # noqa: E402
from topk_bounds.io import read_counts  # noqa: E402

XS = (-0.5, 0.2, 0.75, 1.0, -1.2, 0.0, 0.4, 2.0, -0.3)
LABELS = (0, 1, 2, 2, 0, 1, 1, 2, 0)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(HERE)
    torch.save({"inputs": torch.tensor(XS).reshape(-1, 1), "labels": torch.tensor(LABELS)},
               tmp_path / "data.pt")
    return tmp_path


def _args(out="counts.txt", model="_sampler_models:nearest_centre", n=300, batch=128,
          seed=0, n0=None, extra=()):
    args = ["sample", "--model", model, "--inputs", "data.pt", "--sigma", "1.0", "--n", str(n),
            "--batch", str(batch), "--seed", str(seed), "--out", out, *extra]
    return args + (["--n0", str(n0)] if n0 else [])


def test_cli_rows_are_sample_counts_with_global_indices_and_certify_can_read_them(
        workdir, capsys):
    assert main(_args()) == 0
    data = read_counts("counts.txt")
    expected = sample_counts(models.NearestCentre(), torch.tensor(XS).reshape(-1, 1),
                             sigma=1.0, n=300, batch_size=1000, seed=0)
    np.testing.assert_array_equal(data.counts, expected)
    assert data.labels.tolist() == list(LABELS)
    err = capsys.readouterr().err
    assert "sample/s" in err and f"inputs {len(XS)}/{len(XS)}" in err
    assert f"wrote counts.txt: {len(XS)} rows" in err


def test_cli_file_does_not_depend_on_batch_size(workdir):
    assert main(_args("a.txt", batch=7, extra=["--no-progress"])) == 0
    assert main(_args("b.txt", batch=1000, extra=["--no-progress"])) == 0
    assert (workdir / "a.txt").read_bytes() == (workdir / "b.txt").read_bytes()


def test_cli_n0_leaves_the_count_file_unchanged_and_writes_selection_counts(workdir):
    assert main(_args("plain.txt", extra=["--no-progress"])) == 0
    assert main(_args("two.txt", n0=50, extra=["--no-progress"])) == 0
    plain, two = (workdir / "plain.txt").read_text(), (workdir / "two.txt").read_text()
    assert plain == two
    selection = read_counts("two.txt.n0")
    expected = two_stage_counts(models.NearestCentre(), torch.tensor(XS).reshape(-1, 1),
                                sigma=1.0, n0=50, n=300, batch_size=64, seed=0)
    np.testing.assert_array_equal(selection.counts, expected.selection)
    assert selection.labels.tolist() == list(LABELS)


def test_cli_resumed_after_any_truncation_ends_with_the_identical_file(workdir):
    assert main(_args("full.txt", extra=["--no-progress"])) == 0
    full = (workdir / "full.txt").read_bytes()
    for cut in truncation_points(full):
        (workdir / "counts.txt").write_bytes(full[:cut])
        assert main(_args(extra=["--no-progress"])) == 0
        assert (workdir / "counts.txt").read_bytes() == full, cut


def test_cli_with_n0_resumes_when_the_two_files_are_torn_at_different_rows(workdir):
    assert main(_args("full.txt", n0=40, extra=["--no-progress"])) == 0
    full = (workdir / "full.txt").read_bytes()
    full_n0 = (workdir / "full.txt.n0").read_bytes()
    for cut, cut_n0 in [(len(full) // 2, len(full_n0)), (len(full), len(full_n0) // 3),
                        (len(full) - 3, 0)]:
        (workdir / "counts.txt").write_bytes(full[:cut])
        (workdir / "counts.txt.n0").write_bytes(full_n0[:cut_n0])
        assert main(_args(n0=40, extra=["--no-progress"])) == 0
        assert (workdir / "counts.txt").read_bytes() == full
        assert (workdir / "counts.txt.n0").read_bytes() == full_n0


def test_cli_killed_by_sigkill_and_restarted_ends_with_the_identical_file(workdir):
    # The slow model sleeps 10 ms per forward pass: 9 inputs x 10 passes take about 1 s.
    slow = dict(model="_sampler_models:slow_nearest_centre", n=1280, batch=128)
    proc = start_cli(_args(**slow), workdir)
    out = workdir / "counts.txt"
    wait_for_lines(proc, out, 3)  # header and 2 rows
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    rows_before = out.read_bytes().count(b"\n") - 1
    assert 2 <= rows_before < len(XS), "the run was not killed midway"
    assert main(_args(extra=["--no-progress"], **slow)) == 0
    assert main(_args("reference.txt", extra=["--no-progress"], **slow)) == 0
    assert out.read_bytes() == (workdir / "reference.txt").read_bytes()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated
def test_cli_reads_a_torchscript_model_file(workdir):
    torch.jit.script(models.NearestCentre()).save(str(workdir / "model.pt"))
    assert main(_args("scripted.txt", model="model.pt", extra=["--no-progress"])) == 0
    assert main(_args("factory.txt", extra=["--no-progress"])) == 0
    scripted, factory = read_counts("scripted.txt"), read_counts("factory.txt")
    np.testing.assert_array_equal(scripted.counts, factory.counts)


@pytest.mark.parametrize("change, message", [
    (dict(model="nowhere.py"), "--model: 'nowhere.py' is neither a file nor of the form "
                               "package.module:factory"),
    (dict(model="no_such_module_xyz:make"), "--model: cannot import 'no_such_module_xyz'"),
    (dict(model="_sampler_models:missing"), "--model: '_sampler_models' has no attribute "
                                            "'missing'"),
    (dict(model="_sampler_models:not_a_module"), "returned int, not a torch.nn.Module"),
    (dict(model="_sampler_models:failing"), "the model failed on the inputs: RuntimeError: "
                                            "mat1 and mat2 shapes cannot be multiplied"),
    (dict(inputs="missing.pt"), "--inputs: no such file 'missing.pt'"),
    (dict(inputs=("nolabels.pt", {"inputs": torch.zeros(2, 1)})),
     "must hold a dict with keys 'inputs' and 'labels', got ['inputs']"),
    (dict(inputs=("badlabel.pt", {"inputs": torch.zeros(2, 1), "labels": torch.tensor([0, 3])})),
     "--inputs: label 3 is outside 0..2 (the model has 3 outputs)"),
    (dict(inputs=("intinputs.pt", {"inputs": torch.zeros(2, 1, dtype=torch.int64),
                                   "labels": torch.tensor([0, 1])})),
     "'inputs' must be a floating-point tensor"),
    (dict(sigma="0"), "--sigma must be a finite number > 0, got '0'"),
    (dict(seed="-1"), "--seed must be >= 0, got '-1'"),
    (dict(n="0"), "--n must be >= 1, got '0'"),
    (dict(out="foreign.txt"), "foreign.txt exists and is not a count file of this run"),
])
def test_cli_errors_are_one_line_with_exit_status_2(workdir, capsys, change, message):
    (workdir / "foreign.txt").write_text("some other content")
    args = _args()
    for key, value in change.items():
        if isinstance(value, tuple):
            name, content = value
            torch.save(content, workdir / name)
            value = name
        args[args.index(f"--{key}") + 1] = value
    try:
        status = main(args)
    except SystemExit as exc:  # argparse rejects bad values itself
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("topk-bounds sample: error: "), err
    assert message in err, err


def test_cli_refuses_to_continue_a_file_of_another_run(workdir, capsys):
    assert main(_args(extra=["--no-progress"])) == 0
    before = (workdir / "counts.txt").read_bytes()
    assert main(_args(seed=1, extra=["--no-progress"])) == 2
    assert "was written by a different run (it has seed=0, this run seed=1)" in \
        capsys.readouterr().err
    assert (workdir / "counts.txt").read_bytes() == before


def test_a_file_holding_only_another_runs_header_is_started_afresh(workdir, capsys):
    """A run that stopped before its first row (a model that failed, a kill) leaves only
    its header: a run with other options may replace it, as it holds nothing to mix."""
    assert main(_args(seed=1, extra=["--no-progress"])) == 0
    wanted = (workdir / "counts.txt").read_bytes()
    assert main(_args(extra=["--no-progress"])) == 2  # rows of seed 1: refused (control)
    full = (workdir / "counts.txt").read_bytes()
    header = full[:full.index(b"\n") + 1]
    (workdir / "counts.txt").write_bytes(header + b"3 4")  # and a torn first row
    capsys.readouterr()
    assert main(_args(seed=1, extra=["--no-progress"])) == 0  # same run: resumes
    assert (workdir / "counts.txt").read_bytes() == wanted
    assert main(_args(seed=0, out="zero.txt", extra=["--no-progress"])) == 0
    (workdir / "counts.txt").write_bytes(header)
    assert main(_args(seed=0, extra=["--no-progress"])) == 0
    err = capsys.readouterr().err
    assert "counts.txt holds only the header of an earlier run, no rows; starting it afresh" \
        in err
    assert (workdir / "counts.txt").read_bytes() == (workdir / "zero.txt").read_bytes()
