"""The ``topk-bounds certify`` command and the count-file reader: the table, one clear line
for bad input, the streaming reader, safe output files, and cheap start-up."""

from __future__ import annotations

import ast
import gzip
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import topk_bounds
from topk_bounds import certify, io
from topk_bounds.cli import main
from topk_bounds.limits import N_MAX

GOOD = "9000 600 300 100 0\n4000 3900 2000 100 1\n10 9000 500 490 0\n"
COUNTS = np.array([[9000, 600, 300, 100], [4000, 3900, 2000, 100], [10, 9000, 500, 490]])
ROOT = Path(__file__).resolve().parents[1]


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _certify_args(path, *extra, k="1", sigma="1", alpha="0.01"):
    return ["certify", str(path), "--k", k, "--sigma", sigma, "--alpha", alpha, *extra]


@pytest.fixture
def count_file(tmp_path):
    path = tmp_path / "counts.txt"
    path.write_text(GOOD)
    return path


def _table(text):
    """(header fields, column names, rows) of a certify output."""
    lines = text.splitlines()
    return io.parse_header(lines[0]), lines[1].split("\t"), [line.split("\t") for line in lines[2:]]


# -- the table --------------------------------------------------------------------------------

def test_certify_writes_one_row_per_input_in_order_matching_the_api(count_file, capsys):
    code, out, err = _run(_certify_args(count_file, k="2", sigma="0.5", alpha="0.001"), capsys)
    assert code == 0
    meta, columns, rows = _table(out)
    assert columns == ["idx", "label", "radius", "certified", "p_lower"]
    assert [r[0] for r in rows] == ["0", "1", "2"] and [r[1] for r in rows] == ["0", "1", "0"]
    expected = certify(COUNTS, [0, 1, 0], k=2, sigma=0.5, alpha=0.001)
    assert [float(r[2]) for r in rows] == expected.radius.tolist()  # repr round-trips floats
    assert [float(r[4]) for r in rows] == expected.p_lower.tolist()
    assert [r[3] for r in rows] == ["1", "1", "0"]
    assert "certified top-2 accuracy (3 inputs" in err


def test_certify_header_records_k_sigma_alpha_and_method(count_file, capsys):
    code, out, _ = _run(_certify_args(count_file, "--method", "ranked", k="2", sigma="0.5",
                                      alpha="0.001"), capsys)
    meta, _, _ = _table(out)
    assert code == 0 and meta["kind"] == "certify"
    assert (meta["k"], meta["sigma"], meta["alpha"], meta["method"]) == ("2", "0.5", "0.001",
                                                                          "ranked")
    assert meta["counts"] == str(count_file) and meta["topk_bounds"] == topk_bounds.__version__


def test_certify_out_file_and_binocp(count_file, tmp_path, capsys):
    out_path = tmp_path / "sub" / "radii.tsv"
    code, out, err = _run(_certify_args(count_file, "--method", "binocp", "--out",
                                        str(out_path), sigma="0.25"), capsys)
    assert code == 0 and out == ""
    _, columns, rows = _table(out_path.read_text())
    assert columns[:4] == ["idx", "label", "radius", "certified"] and len(rows) == 3
    assert f"wrote {out_path}" in err


def test_summary_is_certified_accuracy_of_all_rows_across_chunks(tmp_path, capsys, monkeypatch):
    from topk_bounds.report import certified_accuracy

    rng = np.random.default_rng(3)
    counts = rng.multinomial(500, rng.dirichlet(np.ones(5)), size=300)
    labels = rng.integers(0, 5, size=300)
    path = tmp_path / "c.txt"
    path.write_text("".join(io.format_count_row(c, y) for c, y in zip(counts, labels)))
    grid = "0,0.1,0.2,0.4"
    code, whole, err_whole = _run(_certify_args(path, "--grid", grid, k="2"), capsys)
    monkeypatch.setattr(io, "DEFAULT_CHUNK_BYTES", 200)  # about 12 rows per chunk
    code2, chunked, err_chunked = _run(_certify_args(path, "--grid", grid, k="2"), capsys)
    assert code == code2 == 0 and chunked == whole and err_chunked == err_whole
    radius = certify(counts, labels, k=2, sigma=1.0, alpha=0.01).radius
    acc = certified_accuracy(radius, [0, 0.1, 0.2, 0.4])
    assert "  ".join(f"r={g:g}: {a:.3f}" for g, a in zip([0, 0.1, 0.2, 0.4], acc)) in err_whole
    assert [float(r[2]) for r in _table(whole)[2]] == radius.tolist()


def test_k_at_least_c_warns_once_and_gives_infinite_radii(count_file, capsys, monkeypatch):
    monkeypatch.setattr(io, "DEFAULT_CHUNK_BYTES", 16)  # one row per chunk: still one warning
    code, out, err = _run(_certify_args(count_file, k="4"), capsys)
    assert code == 0 and [r[2] for r in _table(out)[2]] == ["inf"] * 3
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert warnings == ["topk-bounds certify: warning: --k 4 >= the number of labels c = 4: "
                        "every label is in the top k, so every radius is inf"]


# -- bad count files --------------------------------------------------------------------------

BAD_FILES = [
    (b"", "holds no count rows"),
    (b"# only a comment\n\n", "holds no count rows"),
    (b"5 5 0\n3 -1 0\n", "line 2: count -1 is negative"),
    (b"5 5 0\n3 x 0\n", "line 2: 'x' is not an integer"),
    (b"5 5 0\n3 2.5 0\n", "line 2: '2.5' is not an integer"),
    (b"5 5 0\n3 1_000 0\n", "line 2: '1_000' is not an integer"),
    (b"5 5 0 # note\n", "line 1: '#' is not an integer"),
    (b"5 5 0\n3 3 3 0\n", "line 2: has 4 fields but earlier rows have 3"),
    (b"5 0\n", r"line 1: expected at least 2 counts and a label, got 2 field\(s\)"),
    (b"5 5 0\n3 3 2\n", r"line 2: label 2 is outside 0..1"),
    (b"5 5 0\n0 0 1\n", "line 2: the counts sum to n = 0"),
    # int64 overflow: the sum of these counts wraps to 102, which would certify label 0
    (b"100 9223372036854775807 9223372036854775807 4 0\n",
     "line 1: count 9223372036854775807 exceeds the largest supported number of samples"),
    (b"5 9223372036854775808 0\n", "line 1: count 9223372036854775808 exceeds"),
    (b"5 1000000000001 0\n", "line 1: count 1000000000001 exceeds"),
    (b"1 1 0\n600000000000 600000000000 0\n",
     "line 2: the counts sum to n = 1200000000000, above the largest supported n"),
    (b"5 5 0\n1 99999999999999999999999 1\n", "line 2: count 99999999999999999999999 exceeds"),
    (b"5 5 0\r\n3 3 7\r\n", "line 2: label 7 is outside 0..1"),
    (b"5 5 0\r3 3 7\r", "line 2: label 7 is outside 0..1"),
    (gzip.compress(b"5 5 0\n"), "line 1: not a text count file: it is gzip-compressed"),
    ("5 5 0\n".encode("utf-16"), "line 1: not a text count file: it is UTF-16 text"),
    ("5 5 0\n".encode("utf-16-le"), "line 1: not a text count file: it is UTF-16 text"),
    (b"5 5 0\n7 7 1\n\x00\x01\x02", "line 3: not a text count file: it holds a NUL byte"),
    (b"5 5 0\ncaf\xe9 1\n", "line 2: not a text count file: byte 0xe9 is not UTF-8 text"),
    (b"PK\x03\x04rest", "line 1: not a text count file: it is a zip archive"),
    (b"# topk-bounds sample v1 n=5 bad field\n5 5 0\n", "line 1: malformed header field"),
]


@pytest.mark.parametrize(("content", "message"), BAD_FILES)
def test_bad_count_files_give_one_line_naming_the_file_and_line_and_no_output(
        tmp_path, capsys, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    out_path = tmp_path / "radii.tsv"
    code, out, err = _run(_certify_args(path, "--out", str(out_path)), capsys)
    assert code == 2
    assert err.count("\n") == 1 and re.search(message, err) and "Traceback" not in err, err
    assert str(path) in err
    assert not out_path.exists()  # atomic: a failed run leaves no file
    assert os.listdir(tmp_path) == ["bad.txt"]  # and no temporary either


@pytest.mark.parametrize(("content", "message"), BAD_FILES)
@pytest.mark.parametrize("chunk_bytes", [1, 7, 64, None])
def test_reader_errors_do_not_depend_on_the_chunk_size(tmp_path, content, message, chunk_bytes):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        with io.iter_counts(path, chunk_bytes=chunk_bytes) as reader:
            for _ in reader:
                pass
    assert re.search(message, str(info.value)) and str(info.value).startswith(str(path))


def test_counts_up_to_n_max_are_accepted(tmp_path):
    path = tmp_path / "edge.txt"
    path.write_text(f"{N_MAX} 0 0\n{N_MAX - 7} 7 1\n")
    data = io.read_counts(path)
    assert data.counts.tolist() == [[N_MAX, 0], [N_MAX - 7, 7]]
    assert certify(data.counts, data.labels, k=1, sigma=0.5, alpha=0.001).radius[0] > 0


def test_adaptive_count_files_are_refused(tmp_path, capsys):
    path = tmp_path / "adaptive.txt"
    path.write_text(io.format_header("sample", {"mode": "adaptive", "n": 100}) + "\n90 10 0\n")
    code, out, err = _run(_certify_args(path), capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "sampled adaptively (header mode=adaptive)" in err and "optional stopping" in err


def test_discrete_noise_files_certify_with_the_delta_their_header_records(tmp_path, capsys):
    delta = 3.25e-4  # large on purpose, so that it visibly lowers every radius
    path = tmp_path / "discrete.txt"
    path.write_text(io.format_header("sample", {"sigma": "0.5", "noise": "discrete", "grid": 255,
                                                "delta": repr(delta)}) + "\n" + GOOD)
    code, out, err = _run(_certify_args(path, k="2", sigma="0.5", alpha="0.001"), capsys)
    assert code == 0
    meta, _, rows = _table(out)
    assert float(meta["delta"]) == delta and "delta=0.000325" in err
    expected = certify(COUNTS, [0, 1, 0], k=2, sigma=0.5, alpha=0.001, delta=delta).radius
    assert [float(r[2]) for r in rows] == expected.tolist()
    without = certify(COUNTS, [0, 1, 0], k=2, sigma=0.5, alpha=0.001).radius
    assert np.all(expected <= without) and expected[0] < without[0] and expected[1] < without[1]


@pytest.mark.parametrize(("fields", "message"), [
    ({"sigma": "0.25"}, "was sampled with sigma = 0.25 (its header), not --sigma 0.5"),
    ({"sigma": "0.5", "noise": "discrete"}, "says noise=discrete but records no delta"),
    ({"sigma": "0.5", "noise": "discrete", "delta": "nan"}, "delta='nan' must be a number in [0, 1)"),
    ({"sigma": "0.5", "delta": "-1e-9"}, "delta='-1e-9' must be a number in [0, 1)"),
])
def test_a_header_that_contradicts_the_arguments_is_refused(tmp_path, capsys, fields, message):
    path = tmp_path / "counts.txt"
    path.write_text(io.format_header("sample", fields) + "\n" + GOOD)
    code, out, err = _run(_certify_args(path, sigma="0.5"), capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err


def test_a_bad_row_late_in_the_file_leaves_stdout_empty(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(io, "DEFAULT_CHUNK_BYTES", 64)
    path = tmp_path / "late.txt"
    path.write_text(GOOD * 50 + "1 1 1 1 9\n")
    code, out, err = _run(_certify_args(path), capsys)
    assert code == 2 and out == "" and "line 151: label 9 is outside 0..3" in err


def test_directories_and_missing_files_give_one_line(tmp_path, capsys):
    code, _, err = _run(_certify_args(tmp_path / "nope.txt"), capsys)
    assert code == 2 and err.count("\n") == 1 and "No such file" in err
    code, _, err = _run(_certify_args(tmp_path), capsys)
    assert code == 2 and err.count("\n") == 1 and f"{tmp_path}: Is a directory" in err


# -- the reader -------------------------------------------------------------------------------

def _reference(text: str):
    """Rows and line numbers of a count file, read the obvious way (one line at a time)."""
    rows, lines = [], []
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            rows.append([int(v) for v in stripped.split()])
            lines.append(number)
    return rows, lines


_separators = st.sampled_from([" ", " ", " ", "  ", "\t", " \t "])
_row = st.lists(st.integers(0, 10**6), min_size=3, max_size=3).map(
    lambda v: v[:2] + [v[2] % 2] if sum(v[:2]) else [1] + v[1:2] + [v[2] % 2])
_line = st.one_of(
    st.tuples(_row, _separators, st.sampled_from(["", " ", "\t"]), st.sampled_from(["", " "]))
      .map(lambda t: t[2] + t[1].join(map(str, t[0])) + t[3]),
    st.sampled_from(["", "   ", "# a comment", "  # indented comment", "#"]),
)


@settings(max_examples=60)
@given(st.lists(_line, min_size=1, max_size=30), st.sampled_from(["\n", "\r\n"]),
       st.booleans(), st.integers(1, 200))
@example(["1 2 0", "", "3 4 1"], "\n", False, 1)
@example(["# c", "1 2 0"], "\r\n", True, 3)
def test_chunked_reading_matches_reading_line_by_line(lines, newline, final_newline, chunk_bytes):
    import tempfile

    text = newline.join(lines) + (newline if final_newline else "")
    rows, numbers = _reference(text)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.txt"
        path.write_bytes(text.encode())
        if not rows:
            with pytest.raises(ValueError, match="holds no count rows"):
                io.read_counts(path)
            return
        with io.iter_counts(path, chunk_bytes=chunk_bytes) as reader:
            chunks = list(reader)
    table = np.concatenate([np.column_stack([c.counts, c.labels]) for c in chunks])
    assert table.tolist() == rows
    assert np.concatenate([c.lines for c in chunks]).tolist() == numbers


@settings(max_examples=40)
@given(st.integers(0, 40), st.integers(1, 300), st.sampled_from([
    "1 2 3 9", "1 -2 0", "1 x 0", "1 2", "0 0 0", f"{N_MAX} 1 0", "1\t2.0 0"]))
def test_the_first_bad_row_is_reported_by_its_line_whatever_the_chunking(bad_at, chunk_bytes,
                                                                           bad_line):
    import tempfile

    lines = ["10 20 1"] * 40
    lines.insert(bad_at, bad_line)
    lines.append("1 1 7")  # a second bad row: never the one reported
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.txt"
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(ValueError) as whole:
            io.read_counts(path)
        with pytest.raises(ValueError) as chunked:
            with io.iter_counts(path, chunk_bytes=chunk_bytes) as reader:
                list(reader)
    assert str(chunked.value) == str(whole.value)
    assert f"line {bad_at + 1}: " in str(whole.value)


def test_utf8_byte_order_mark_and_lines_longer_than_a_chunk_are_read(tmp_path):
    path = tmp_path / "bom.txt"
    wide = " ".join(["1"] * 500) + " 3\n"
    path.write_bytes(b"\xef\xbb\xbf" + wide.encode() * 3)
    with io.iter_counts(path, chunk_bytes=50) as reader:
        chunks = list(reader)
    assert sum(c.labels.size for c in chunks) == 3 and reader.classes == 500
    assert all(np.all(c.counts == 1) for c in chunks)


def test_header_is_read_before_the_first_chunk(tmp_path):
    path = tmp_path / "c.txt"
    header = io.format_header("sample", {"n": 10, "inputs": "a b\nc.pt"})
    path.write_text(f"\n{header}\n# another\n5 5 0\n")
    with io.iter_counts(path) as reader:
        assert reader.meta["inputs"] == "a b\nc.pt" and reader.format == "text"
        (chunk,) = list(reader)
    assert chunk.lines.tolist() == [4] and chunk.meta == reader.meta


def test_read_counts_of_the_published_file_matches_numpy(shared_data):
    path = shared_data / "cifar10_sigma0.25_counts.txt"
    table = np.loadtxt(path, dtype=np.int64)
    data = io.read_counts(path)
    np.testing.assert_array_equal(data.counts, table[:, :-1])
    np.testing.assert_array_equal(data.labels, table[:, -1])


# -- .npy count files -------------------------------------------------------------------------

def test_npy_count_files_certify_like_text(tmp_path, count_file, capsys):
    npy = io.save_counts(tmp_path / "c.npy", COUNTS, [0, 1, 0])
    data = io.read_counts(npy)
    assert data.counts.tolist() == COUNTS.tolist() and data.lines.tolist() == [1, 2, 3]
    _, text_out, _ = _run(_certify_args(count_file, k="2"), capsys)
    _, npy_out, _ = _run(_certify_args(npy, k="2"), capsys)
    assert _table(npy_out)[2] == _table(text_out)[2]


def test_npy_files_take_the_samplers_delta_from_the_command_line(tmp_path, capsys):
    # a .npy array has no header: --delta gives the discrete sampler's slack explicitly
    npy = io.save_counts(tmp_path / "c.npy", COUNTS, [0, 1, 0])
    code, out, err = _run(_certify_args(npy, "--delta", "3.25e-4", k="2", sigma="0.5",
                                        alpha="0.001"), capsys)
    assert code == 0 and "delta=0.000325" in err
    expected = certify(COUNTS, [0, 1, 0], k=2, sigma=0.5, alpha=0.001, delta=3.25e-4).radius
    assert [float(r[2]) for r in _table(out)[2]] == expected.tolist()


def test_delta_that_contradicts_the_header_is_refused(tmp_path, capsys):
    path = tmp_path / "discrete.txt"
    path.write_text(io.format_header("sample", {"sigma": "0.5", "noise": "discrete",
                                                "delta": "1e-12"}) + "\n" + GOOD)
    code, out, err = _run(_certify_args(path, "--delta", "0", sigma="0.5"), capsys)
    assert code == 2 and out == "" and "records delta=1e-12, not --delta 0.0" in err


def test_a_truncated_npy_file_is_named_with_the_missing_row(tmp_path, capsys):
    npy = io.save_counts(tmp_path / "c.npy", np.tile(COUNTS, (10, 1)), [0, 1, 0] * 10)
    data = npy.read_bytes()
    npy.write_bytes(data[:-8 * 5 * 4])  # the last four rows (5 int64 columns each) cut off
    code, _, err = _run(_certify_args(npy), capsys)
    assert code == 2 and "the .npy file is truncated" in err and "array row 26" in err


def test_reading_npy_files_in_chunks_keeps_memory_flat(tmp_path):
    # peak memory of a fresh process reading 20x more rows grows by far less than the data
    rng = np.random.default_rng(0)
    sizes = (10_000, 200_000)
    for rows in sizes:
        io.save_counts(tmp_path / f"c{rows}.npy", rng.integers(1, 50, size=(rows, 101)),
                       np.zeros(rows, dtype=int))  # 161 MB at 200,000 rows
    code = ("import sys; from topk_bounds import io\n"
            "for chunk in io.iter_counts(sys.argv[1]): pass\n"
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])")
    peaks = [int(subprocess.run([sys.executable, "-c", code, str(tmp_path / f"c{rows}.npy")],
                                capture_output=True, text=True, check=True).stdout)
             for rows in sizes]
    assert peaks[1] - peaks[0] < 20 * 1024, peaks  # KiB; a memory map grew by the whole file


@pytest.mark.parametrize(("array", "message"), [
    (np.array([[5, 5, 0], [1, 2, 3]]), "array row 1: label 3 is outside 0..1"),
    (np.array([[5, -5, 0]]), "array row 0: count -5 is negative"),
    (np.array([[5, 2**63, 0]], dtype=np.uint64), "array row 0: count 9223372036854775808 exceeds"),
    (np.array([[2**62, 2**62, 0]], dtype=np.int64), "array row 0: count 4611686018427387904"),
    (np.array([[0, 0, 0]], dtype=np.uint8), "array row 0: the counts sum to n = 0"),
    (np.array([[5.0, 5.0, 0.0]]), "must hold integers, got dtype float64"),
    (np.array([5, 5, 0]), r"must have shape \(N, c \+ 1\)"),
    (np.zeros((0, 3), dtype=np.int64), "holds no count rows"),
])
def test_bad_npy_count_files_name_the_array_row(tmp_path, array, message):
    path = tmp_path / "c.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match=message):
        io.read_counts(path)


def test_save_counts_refuses_what_read_counts_would(tmp_path):
    with pytest.raises(ValueError, match=r"counts\[0\], labels\[0\]: count 9223372036854775808"):
        io.save_counts(tmp_path / "c.npy", np.array([[2**63, 1]], dtype=np.uint64), [0])
    assert not (tmp_path / "c.npy").exists()


# -- output files -----------------------------------------------------------------------------

def test_out_may_not_be_the_input_file(count_file, tmp_path, capsys):
    link = tmp_path / "link.txt"
    link.symlink_to(count_file)
    for out in (count_file, link):
        code, _, err = _run(_certify_args(count_file, "--out", str(out)), capsys)
        assert code == 2 and err.count("\n") == 1 and "is the input file" in err
    assert count_file.read_text() == GOOD


def test_new_outputs_follow_the_umask_and_replaced_ones_keep_their_mode(count_file, tmp_path,
                                                                        capsys):
    out = tmp_path / "r.tsv"
    old = os.umask(0o027)
    try:
        assert main(_certify_args(count_file, "--out", str(out))) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    for mode in (0o644, 0o600):
        out.chmod(mode)
        assert main(_certify_args(count_file, "--out", str(out))) == 0
        assert stat.S_IMODE(out.stat().st_mode) == mode
    capsys.readouterr()


def test_out_that_names_a_directory_is_refused_naming_it(count_file, tmp_path, capsys):
    for out, message in ((tmp_path / "newdir", "names a directory (it ends with '/')"),
                         (tmp_path, "Is a directory")):
        arg = str(out) + "/" if out.name == "newdir" else str(out)
        code, _, err = _run(_certify_args(count_file, "--out", arg), capsys)
        assert code == 2 and err.count("\n") == 1 and message in err, err
        assert ".tkb" not in err and ".tmp" not in err
    assert sorted(os.listdir(tmp_path)) == ["counts.txt"]


def test_long_file_names_work_and_too_long_ones_fail_before_any_work(count_file, tmp_path, capsys):
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    longest = tmp_path / ("r" * (name_max - 4) + ".tsv")
    assert main(_certify_args(count_file, "--out", str(longest))) == 0
    assert longest.exists()
    capsys.readouterr()
    code, _, err = _run(_certify_args(count_file, "--out", str(tmp_path / ("r" * (name_max + 1)))),
                        capsys)
    assert code == 2 and err.count("\n") == 1 and "File name too long" in err


def test_stale_temporary_files_do_not_confuse_a_later_run(count_file, tmp_path, capsys):
    # what a SIGKILLed run leaves behind: a temporary in the target's directory
    stale = tmp_path / ".tkb-abcdefgh.tmp"
    stale.write_text("idx\tlabel\n0\t0\n")
    assert main(_certify_args(count_file, "--out", str(tmp_path / "r.tsv"))) == 0
    assert len(_table((tmp_path / "r.tsv").read_text())[2]) == 3
    assert stale.read_text() == "idx\tlabel\n0\t0\n"  # another run's file is not touched
    capsys.readouterr()


def test_atomic_group_refuses_the_same_target_twice(tmp_path):
    with pytest.raises(ValueError, match="written twice"):
        with io.AtomicGroup() as group:
            group.write_text(tmp_path / "a.txt", "1")
            group.write_text(tmp_path / "sub" / ".." / "a.txt", "2")
    assert os.listdir(tmp_path) == []  # neither the file nor the directory made for it


def test_atomic_write_names_the_target_when_the_disk_is_full(tmp_path, monkeypatch):
    import errno

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        with io.atomic_write(tmp_path / "deep" / "r.tsv") as fh:
            fh.write("x")
    assert info.value.filename == str(tmp_path / "deep" / "r.tsv")
    assert os.listdir(tmp_path) == []


# -- the command line itself ------------------------------------------------------------------

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
    assert re.search(message, err), err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"topk-bounds {topk_bounds.__version__}\n"


def test_bare_command_prints_usage_and_the_subcommands(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: topk-bounds")
    for name in ("certify", "report", "sample", "demo"):
        assert re.search(rf"^\s+{name}\s+\S", err, re.M), name


@pytest.mark.parametrize("name", ["certify", "report", "sample", "demo"])
def test_every_subcommand_has_a_description(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    lines = help_text.split("\n\n")
    assert len(lines) > 2 and not lines[1].lstrip().startswith(("positional", "options")), help_text


def test_console_script_runs_as_a_subprocess(count_file):
    proc = subprocess.run([sys.executable, "-m", "topk_bounds.cli", "certify", str(count_file),
                           "--k", "3", "--sigma", "0.5", "--alpha", "0.001"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 5  # the header line, the column names, three rows


def _imported(code: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    return set(proc.stdout.split())


def test_importing_the_package_and_the_cli_imports_no_numpy():
    assert "numpy" not in _imported("import topk_bounds, topk_bounds.cli")
    assert "numpy" not in _imported("from topk_bounds.cli import build_parser\n"
                                    "build_parser(['certify', 'report', 'sample'])")


def test_certify_subcommand_imports_nothing_it_does_not_need(count_file):
    modules = _imported("from topk_bounds.cli import main\n"
                        f"main(['certify', {str(count_file)!r}, '--k', '1', '--sigma', '1', "
                        "'--alpha', '0.1'])")
    assert "topk_bounds.certify" in modules
    unwanted = {"torch", "matplotlib", "topk_bounds.report", "sampler", "scipy.stats"}
    if _imports_at_top(ROOT / "topk_bounds" / "certify.py", "scipy.stats"):
        unwanted.discard("scipy.stats")  # certify.py's own import, not the CLI's
    assert not unwanted & modules


def _imports_at_top(path: Path, module: str) -> bool:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and \
                any(f"{node.module}.{a.name}" == module or node.module == module for a in node.names):
            return True
        if isinstance(node, ast.Import) and any(a.name == module for a in node.names):
            return True
    return False


def test_lazy_package_keeps_every_public_name(tmp_path):
    code = ("import topk_bounds.certify, topk_bounds\n"
            "from topk_bounds import *\n"
            "from topk_bounds import certify\n"
            "assert callable(certify) and certify.__name__ == 'certify', certify\n"
            "assert all(hasattr(topk_bounds, n) for n in topk_bounds.__all__)\n"
            "assert topk_bounds.radius.__name__ == 'topk_bounds.radius'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_special_files_are_written_directly_not_replaced(count_file, tmp_path, capsys):
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    assert main(_certify_args(count_file, "--out", str(fifo))) == 0
    reader.join(timeout=60)
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still a FIFO, not a regular file
    assert len(_table(received[0])[2]) == 3
    assert sorted(os.listdir(tmp_path)) == ["counts.txt", "fifo"]
    capsys.readouterr()


def test_empty_out_is_refused(count_file, capsys):
    code, _, err = _run(_certify_args(count_file, "--out", ""), capsys)
    assert code == 2 and "the output path is empty" in err
    assert main(["report", "x.tsv", "--out", ""]) == 2
    assert "--out is empty" in capsys.readouterr().err


def test_comments_that_only_start_like_a_header_are_comments(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("# topk-bounds demo: sklearn digits, sigma=0.5\n5 5 0\n")
    assert io.read_counts(path).meta == {}
    path.write_text("# topk-bounds sample v1 mode=adaptive broken\n5 5 0\n")
    with pytest.raises(ValueError, match="line 1: malformed header field 'broken'"):
        io.read_counts(path)  # a real header that cannot be read is never skipped
