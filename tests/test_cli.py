"""The ``topk-bounds certify`` command: the table it writes, and one clear line for bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from topk_bounds import certify
from topk_bounds.cli import main

GOOD = "9000 600 300 100 0\n4000 3900 2000 100 1\n10 9000 500 490 0\n"


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def count_file(tmp_path):
    path = tmp_path / "counts.txt"
    path.write_text(GOOD)
    return path


def test_certify_writes_one_row_per_input_in_order_matching_the_api(count_file, capsys):
    code, out, err = _run(["certify", str(count_file), "--k", "2", "--sigma", "0.5", "--alpha", "0.001"], capsys)
    assert code == 0
    lines = out.splitlines()
    header = lines[0].split("\t")
    assert header[:4] == ["idx", "label", "radius", "certified"]
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[0] for r in rows] == ["0", "1", "2"] and [r[1] for r in rows] == ["0", "1", "0"]
    counts = np.array([[9000, 600, 300, 100], [4000, 3900, 2000, 100], [10, 9000, 500, 490]])
    expected = certify(counts, [0, 1, 0], k=2, sigma=0.5, alpha=0.001)
    assert [float(r[2]) for r in rows] == expected.radius.tolist()  # repr round-trips floats
    assert [r[3] for r in rows] == ["1", "1", "0"]
    assert "certified top-2 accuracy (3 inputs" in err


def test_certify_out_file_and_binocp(count_file, tmp_path, capsys):
    out_path = tmp_path / "sub" / "radii.tsv"
    code, out, err = _run(["certify", str(count_file), "--k", "1", "--sigma", "0.25", "--alpha", "0.01",
                           "--method", "binocp", "--out", str(out_path)], capsys)
    assert code == 0 and out == ""
    assert out_path.read_text().startswith("idx\tlabel\tradius\tcertified")
    assert f"wrote {out_path}" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no count rows"),
        ("5 5 0\n3 -1 0\n", "line 2: count -1 is negative"),
        ("5 5 0\n3 x 0\n", "line 2: 'x' is not an integer"),
        ("5 5 0\n3 2.5 0\n", "line 2: '2.5' is not an integer"),
        ("5 5 0\n3 3 3 0\n", "line 2: has 4 fields but earlier rows have 3"),
        ("5 5 0\n3 3 2\n", r"line 2: label 2 is outside 0..1"),
        ("5 5 0\n0 0 1\n", "line 2: the counts sum to n = 0"),
    ],
)
def test_bad_count_files_give_one_line_naming_the_line_and_no_output(tmp_path, capsys, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    out_path = tmp_path / "radii.tsv"
    code, out, err = _run(["certify", str(path), "--k", "1", "--sigma", "1", "--alpha", "0.01",
                           "--out", str(out_path)], capsys)
    assert code != 0
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not out_path.exists()  # atomic: a failed run leaves no file
    assert not list(tmp_path.glob(".radii.tsv*"))  # and no temporary either


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k", "0", "--sigma", "1", "--alpha", "0.01"], "--k must be >= 1, got '0'"),
        (["--k", "1", "--sigma", "0", "--alpha", "0.01"], "--sigma must be a finite number > 0, got '0'"),
        (["--k", "1", "--sigma", "nan", "--alpha", "0.01"], "--sigma must be a finite number > 0, got 'nan'"),
        (["--k", "1", "--sigma", "1", "--alpha", "1"], r"--alpha must lie in \(0, 1\), got '1'"),
        (["--k", "1", "--sigma", "1", "--alpha", "-0.1"], r"--alpha must lie in \(0, 1\)"),
        (["--k", "1", "--sigma", "1", "--alpha", "0.01", "--method", "cp"], "invalid choice: 'cp'"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(count_file, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["certify", str(count_file), *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert pytest.importorskip("re").search(message, err), err


def test_missing_file_gives_one_line(tmp_path, capsys):
    code, out, err = _run(["certify", str(tmp_path / "nope.txt"), "--k", "1", "--sigma", "1", "--alpha", "0.1"], capsys)
    assert code == 2 and err.count("\n") == 1 and "No such file" in err


def test_console_script_runs_as_a_subprocess(count_file):
    proc = subprocess.run([sys.executable, "-m", "topk_bounds.cli", "certify", str(count_file),
                           "--k", "3", "--sigma", "0.5", "--alpha", "0.001"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 4


def test_certify_subcommand_does_not_import_torch(count_file):
    code = ("import sys; from topk_bounds.cli import main; "
            f"main(['certify', {str(count_file)!r}, '--k', '1', '--sigma', '1', '--alpha', '0.1']); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
