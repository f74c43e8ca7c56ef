"""Tests of topk_bounds.report: certified accuracy, ACR, tables, plots, files and the CLI."""

from __future__ import annotations

import datetime
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import topk_bounds
from topk_bounds.cli import main
from topk_bounds.io import format_count_row, format_header
from topk_bounds.report import (DEFAULT_GRID, average_certified_radius, certified_accuracy,
                                certified_accuracy_table, read_radii, write_cohen, write_radii)

# Signed radii: finite values of either sign, exact zeros and the infinities.
radii_st = st.lists(
    st.one_of(st.floats(-5, 5, allow_nan=False), st.sampled_from([0.0, -0.0, math.inf,
                                                                  -math.inf])),
    min_size=1, max_size=40)


# -- certified_accuracy ---------------------------------------------------------------------

def test_certified_accuracy_matches_counting_by_hand():
    radius = [0.5, 1.2, -0.3, 0.0, math.inf, -math.inf, 2.0]
    grid = [0.0, 0.5, 1.0, 2.0, math.inf]
    # By hand: certified are 0.5, 1.2, inf and 2.0 (4 of 7); -0.3, 0.0 and -inf are not.
    # r=0: 4;  r=0.5: 0.5, 1.2, inf, 2.0 -> 4;  r=1: 1.2, inf, 2.0 -> 3;
    # r=2: inf, 2.0 -> 2;  r=inf: inf -> 1.
    expected = np.array([4, 4, 3, 2, 1]) / 7
    np.testing.assert_array_equal(certified_accuracy(radius, grid), expected)


def test_uncertified_inputs_never_count_even_at_radius_zero():
    radius = [0.0, -0.0, -1e-300, -3.0, -math.inf]
    np.testing.assert_array_equal(certified_accuracy(radius, [0.0, 0.1, 1.0]), [0.0, 0.0, 0.0])


def test_tiny_positive_radius_counts_at_zero_but_not_beyond():
    np.testing.assert_array_equal(certified_accuracy([1e-300, -1.0], [0.0, 1e-200]), [0.5, 0.0])


@given(radii_st, st.lists(st.floats(0, 10), min_size=1, max_size=12))
@example([0.0], [0.0])
@example([math.inf, -math.inf], [0.0, 1e300])
def test_certified_accuracy_is_non_increasing_in_radius(radius, grid):
    acc = certified_accuracy(radius, sorted(grid))
    assert np.all(np.diff(acc) <= 0)
    assert np.all((0 <= acc) & (acc <= 1))


@given(radii_st, st.floats(0, 10))
def test_certified_accuracy_equals_the_definition(radius, r):
    # The definition, written out independently of the implementation's sort + search.
    expected = sum(1 for v in radius if v > 0 and v >= r) / len(radius)
    assert certified_accuracy(radius, r) == expected


def test_certified_accuracy_keeps_the_grid_shape():
    assert certified_accuracy([1.0, -1.0], 0.5).shape == ()
    assert certified_accuracy([1.0, -1.0], [0.5]).shape == (1,)


@pytest.mark.parametrize("radius, grid, message", [
    ([], [0.0], "empty"),
    ([[1.0]], [0.0], "1-dimensional"),
    ([1.0, float("nan")], [0.0], r"radius\[1\] is NaN"),
    ([1.0], [-0.5], "radii >= 0"),
    ([1.0], [float("nan")], "radii >= 0"),
])
def test_certified_accuracy_rejects_bad_input_with_a_message(radius, grid, message):
    with pytest.raises(ValueError, match=message):
        certified_accuracy(radius, grid)


def test_certified_accuracy_top3_is_at_least_top1_from_the_same_counts():
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.full(10, 0.4), size=200)
    counts = np.array([rng.multinomial(2000, p) for p in probs])
    labels = np.array([rng.choice(10, p=p) for p in probs])  # labels, sometimes not the top
    grid = np.linspace(0, 2, 41)
    acc = [certified_accuracy(topk_bounds.certify(counts, labels, k=k, sigma=0.5,
                                                  alpha=0.001).radius, grid)
           for k in (1, 2, 3)]
    assert np.all(acc[2] >= acc[1]) and np.all(acc[1] >= acc[0])
    assert acc[2][0] > acc[0][0]  # and the difference is real for these counts


# -- average certified radius ---------------------------------------------------------------

def test_average_certified_radius_counts_uncertified_as_zero():
    # By hand: (0.5 + 1.2 + 0 + 0 + 0) / 5 = 0.34; -0.3, 0.0 and -inf contribute 0.
    assert average_certified_radius([0.5, 1.2, -0.3, 0.0, -math.inf]) == pytest.approx(0.34,
                                                                                     rel=1e-15)


def test_average_certified_radius_is_infinite_with_an_infinite_radius():
    assert average_certified_radius([math.inf, -1.0]) == math.inf


@given(st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=30))
def test_average_certified_radius_is_the_area_under_the_accuracy_curve(radius):
    # The curve is non-increasing, so left and right Riemann sums bracket its integral.
    grid = np.linspace(0, 3, 3001)
    acc = certified_accuracy(radius, grid)
    step = grid[1] - grid[0]
    right, left = step * acc[1:].sum(), step * acc[:-1].sum()
    acr = average_certified_radius(radius)
    assert right - 1e-12 <= acr <= left + 1e-12


# -- tables ---------------------------------------------------------------------------------

def _table():
    # top-1: radii 0.3, -0.1, 0.8; top-3: 0.9, 0.4, 1.7 (3 inputs).
    # By hand, at r = 0, 0.5, 1: top-1 2/3, 1/3, 0; top-3 1, 2/3, 1/3.
    # ACR: top-1 (0.3 + 0.8) / 3 = 0.3667; top-3 (0.9 + 0.4 + 1.7) / 3 = 1.
    return certified_accuracy_table({"top-1": [0.3, -0.1, 0.8], "top-3": [0.9, 0.4, 1.7]},
                                    grid=[0, 0.5, 1])


def test_table_values_match_hand_computation():
    t = _table()
    np.testing.assert_allclose(t.accuracy, [[2 / 3, 1 / 3, 0], [1, 2 / 3, 1 / 3]], rtol=1e-15)
    np.testing.assert_allclose(t.acr, [1.1 / 3, 1.0], rtol=1e-15)
    assert t.names == ("top-1", "top-3") and t.num_inputs == (3, 3)


def _md_cells(text):
    lines = text.splitlines()
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]


def test_markdown_is_well_formed():
    md = _table().to_markdown()
    lines = md.splitlines()
    assert all(line.startswith("| ") or line.startswith("|:") for line in lines)
    assert all(line.endswith("|") for line in lines)
    cells = _md_cells(md)
    assert len({len(row) for row in cells}) == 1  # every line has the same number of cells
    assert cells[0] == ["", "r = 0", "r = 0.5", "r = 1", "ACR"]
    assert re.fullmatch(r"\|:-+(\|-+:)+\|", lines[1])  # names left, numbers right aligned


def test_markdown_marks_the_best_value_of_each_column():
    cells = _md_cells(_table().to_markdown())
    assert cells[2] == ["top-1", "0.667", "0.333", "0.000", "0.367"]
    assert cells[3] == ["top-3", "**1.000**", "**0.667**", "**0.333**", "**1.000**"]


def test_ties_are_all_marked_and_unanimous_columns_are_not():
    t = certified_accuracy_table({"a": [1.0, -1.0], "b": [1.0, -1.0], "c": [-1.0, -1.0]},
                                 grid=[0, 2])
    cells = _md_cells(t.to_markdown())
    # r=0: a and b tie at 0.5 (best), c is 0. r=2: all 0: nothing is marked.
    assert [row[1] for row in cells[2:]] == ["**0.500**", "**0.500**", "0.000"]
    assert [row[2] for row in cells[2:]] == ["0.000", "0.000", "0.000"]


def test_best_is_decided_on_the_printed_values():
    # ACRs 0.50004 / 2 = 0.25002 and 0.49996 / 2 = 0.24998 both print as 0.250 (digits=3):
    # they tie, so both are marked; c (ACR 0) is not.
    t = certified_accuracy_table({"a": [0.50004, -1.0], "b": [0.49996, -1.0],
                                  "c": [-1.0, -1.0]}, grid=[0.0])
    cells = _md_cells(t.to_markdown(digits=3))
    assert [row[2] for row in cells[2:]] == ["**0.250**", "**0.250**", "0.000"]  # ACR column


def test_a_single_curve_marks_nothing():
    t = certified_accuracy_table({"only": [0.3, 1.0]}, grid=[0, 0.5])
    assert "**" not in t.to_markdown() and r"\textbf" not in t.to_latex()


def test_latex_is_well_formed_and_marks_the_best():
    tex = _table().to_latex()
    lines = tex.splitlines()
    assert lines[0] == r"\begin{tabular}{lrrrr}" and lines[-1] == r"\end{tabular}"
    assert lines[1] == r"\toprule" and lines[3] == r"\midrule" and lines[-2] == r"\bottomrule"
    body = lines[2:3] + lines[4:-2]
    assert all(line.endswith(r" \\") and line.count("&") == 4 for line in body)
    assert tex.count("{") == tex.count("}")
    assert lines[5] == (r"top-3 & \textbf{1.000} & \textbf{0.667} & \textbf{0.333} & "
                        r"\textbf{1.000} \\")


def test_latex_escapes_special_characters_in_names():
    t = certified_accuracy_table({"ours_k=3 & 50%": [1.0], "b": [0.5]}, grid=[0])
    assert r"ours\_k=3 \& 50\%" in t.to_latex()


def test_markdown_escapes_pipes_in_names():
    t = certified_accuracy_table({"a|b": [1.0]}, grid=[0])
    row = t.to_markdown().splitlines()[2]
    assert row.startswith(r"| a\|b ") and len(re.split(r"(?<!\\)\|", row)) == 5


def test_infinite_acr_prints_as_infinity():
    t = certified_accuracy_table({"k>=c": [math.inf], "b": [0.5]}, grid=[0])
    assert "**inf**" in t.to_markdown() and r"$\infty$" in t.to_latex()


def test_table_rejects_an_empty_mapping_and_bad_digits():
    with pytest.raises(ValueError, match="at least one curve"):
        certified_accuracy_table({})
    with pytest.raises(ValueError, match="digits"):
        _table().to_markdown(digits=-1)


def test_default_grid_is_sorted_and_starts_at_zero():
    assert DEFAULT_GRID[0] == 0 and list(DEFAULT_GRID) == sorted(DEFAULT_GRID)


# -- plot -----------------------------------------------------------------------------------

def test_plot_draws_one_exact_step_curve_per_row():
    pytest.importorskip("matplotlib")
    ax = _table().plot(max_radius=2.0)
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["top-1", "top-3"]
    # ax.step(where="pre") stores the step vertices; the curve must never rise, and each
    # value at a knot must be certified_accuracy there.
    for line, radius in zip(lines, _table().radii):
        x, y = (np.asarray(v, dtype=float) for v in line.get_data())
        assert x[0] == 0 and x[-1] == 2.0
        np.testing.assert_array_equal(y, certified_accuracy(radius, x))
        assert np.all(np.diff(y) <= 0)


def test_plot_ignores_infinite_radii_and_grid_points_when_sizing_the_axis():
    pytest.importorskip("matplotlib")
    t = certified_accuracy_table({"a": [0.5, math.inf], "b": [1.0, -1.0]}, grid=[0, math.inf])
    assert t.plot().get_xlim() == (0.0, 1.05)


def test_savefig_writes_png_and_pdf(tmp_path):
    pytest.importorskip("matplotlib")
    paths = _table().savefig(tmp_path / "acc")
    assert [p.name for p in paths] == ["acc.png", "acc.pdf"]
    assert (tmp_path / "acc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "acc.pdf").read_bytes()[:5] == b"%PDF-"


def test_importing_report_loads_neither_matplotlib_nor_torch():
    code = ("import sys, topk_bounds.report; "
            "print('matplotlib' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "False"]


# -- files ----------------------------------------------------------------------------------

def test_write_radii_round_trips_exactly_through_read_radii(tmp_path):
    radii = {"top-1": [0.1 + 0.2, -1e-300, -math.inf], "top-3": [math.inf, 0.0, 1 / 3]}
    write_radii(tmp_path / "r.tsv", [3, 1, 4], radii, predict=[3, -1, 4])
    header = (tmp_path / "r.tsv").read_text().splitlines()[0]
    assert header == "idx\tlabel\tpredict\tradius_top1\tradius_top3"
    back = read_radii(tmp_path / "r.tsv")
    assert list(back) == ["top-1", "top-3"]
    for name in radii:
        assert back[name].tolist() == radii[name]  # exact, not approximate


def test_read_radii_reads_the_certify_subcommand_output(tmp_path):
    path = tmp_path / "k1.tsv"
    path.write_text("idx\tlabel\tradius\tcertified\tp_lower\n"
                    "0\t3\t0.25\t1\t0.9\n1\t5\t-0.5\t0\t0.2\n2\t0\tinf\t1\t0.99\n")
    assert read_radii(path)[""].tolist() == [0.25, -0.5, math.inf]


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("idx\tlabel\n0\t1\n", "no 'radius'"),
    ("idx\tradius\n", "no rows"),
    ("idx\tradius\n0\t0.5\n1\tabc\n", r"line 3: radius 'abc' is not a number"),
    ("idx\tradius\n0\t0.5\t7\n", "line 2: has 3 fields"),
])
def test_read_radii_names_the_file_and_line_of_a_problem(tmp_path, text, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        read_radii(path)
    assert "bad.tsv" in str(info.value)


def test_cohen_format_has_their_columns_and_reproduces_certified_accuracy(tmp_path):
    labels = [1, 2, 0, 7, 3]
    radius = [0.42, -0.1, 0.0, 1.5, math.inf]
    write_cohen(tmp_path / "c.tsv", labels, radius, predict=[1, 4, -1, 7, 3],
                times=[0.5, 1.25, 0.0, 61.0, 0.001])
    rows = [line.split("\t") for line in (tmp_path / "c.tsv").read_text().splitlines()]
    assert rows[0] == ["idx", "label", "predict", "radius", "correct", "time"]
    assert all(len(row) == 6 for row in rows)
    body = rows[1:]
    assert [int(r[1]) for r in body] == labels and [int(r[2]) for r in body] == [1, 4, -1, 7, 3]
    # Not certified: radius 0.0 and correct 0, as Cohen et al. write abstentions.
    assert [(r[3], r[4]) for r in body] == [("0.42", "1"), ("0.0", "0"), ("0.0", "0"),
                                            ("1.5", "1"), ("inf", "1")]
    assert body[3][5] == str(datetime.timedelta(seconds=61))  # '0:01:01', as their code
    # Their analysis: certified accuracy at r = mean(correct & (radius >= r)).
    correct = np.array([int(r[4]) for r in body]) == 1
    rad = np.array([float(r[3]) for r in body])
    for r in (0.0, 0.42, 1.0, 1.5, 2.0):
        assert np.mean(correct & (rad >= r)) == certified_accuracy(radius, r)
    assert read_radii(tmp_path / "c.tsv")[""].tolist() == [0.42, 0.0, 0.0, 1.5, math.inf]


def test_cohen_predict_defaults_to_unknown(tmp_path):
    write_cohen(tmp_path / "c.tsv", [1], [0.5])
    assert (tmp_path / "c.tsv").read_text().splitlines()[1].split("\t")[2] == "-1"


# -- the report subcommand ------------------------------------------------------------------

def _certify_tsv(path, radii):
    rows = "".join(f"{i}\t{i % 10}\t{r!r}\t{int(r > 0)}\t0.5\n" for i, r in enumerate(radii))
    path.write_text("idx\tlabel\tradius\tcertified\tp_lower\n" + rows)
    return str(path)


def test_report_cli_writes_plot_and_tables_from_certify_outputs(tmp_path, capsys):
    a = _certify_tsv(tmp_path / "k1.tsv", [0.3, -0.1, 0.8, 0.0])
    b = _certify_tsv(tmp_path / "k3.tsv", [0.9, 0.4, 1.7, -2.0])
    out = tmp_path / "out"
    assert main(["report", a, b, "--out", str(out), "--grid", "0,0.5,1",
                 "--name", "top-1", "--name", "top-3", "--cohen"]) == 0
    for name in ("certified_accuracy.png", "certified_accuracy.pdf", "certified_accuracy.md",
                 "certified_accuracy.tex", "cohen_top-1.tsv", "cohen_top-3.tsv"):
        assert (out / name).stat().st_size > 0, name
    md = (out / "certified_accuracy.md").read_text()
    # By hand (4 inputs): top-1 at r=0, 0.5, 1: 2/4, 1/4, 0; top-3: 3/4, 2/4, 1/4.
    assert "| top-1 | 0.500 " in md and "| top-3 | **0.750** | **0.500** | **0.250** |" in md
    stdout = capsys.readouterr().out
    assert "| top-3 |" in stdout and f"wrote {out / 'certified_accuracy.png'}" in stdout


def test_report_cli_names_curves_from_the_files_by_default(tmp_path, capsys):
    a = _certify_tsv(tmp_path / "sigma025.tsv", [0.3, -0.1])
    assert main(["report", a, "--out", str(tmp_path / "o"), "--grid", "0"]) == 0
    assert "| sigma025 |" in (tmp_path / "o" / "certified_accuracy.md").read_text()


def test_report_cli_certifies_a_count_file(tmp_path, capsys):
    rng = np.random.default_rng(1)
    counts = np.array([rng.multinomial(1000, rng.dirichlet(np.ones(5))) for _ in range(30)])
    labels = counts.argmax(axis=1)
    path = tmp_path / "counts.txt"
    path.write_text("".join(format_count_row(c, y) for c, y in zip(counts, labels)))
    out = tmp_path / "out"
    assert main(["report", "--counts", str(path), "--k", "3,1", "--sigma", "0.25",
                 "--alpha", "0.001", "--out", str(out), "--cohen"]) == 0
    back = read_radii(out / "radii.tsv")
    assert list(back) == ["top-1", "top-3"]
    for k in (1, 3):
        direct = topk_bounds.certify(counts, labels, k=k, sigma=0.25, alpha=0.001).radius
        np.testing.assert_array_equal(back[f"top-{k}"], direct)
    header = (out / "radii.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["idx", "label", "predict", "radius_top1", "radius_top3"]
    assert (out / "cohen_top-3.tsv").exists()


def test_report_counts_predicts_with_the_delta_of_a_discrete_noise_file(tmp_path, capsys):
    """A file sampled with discrete noise records its delta: the radii and the top-1
    predictions both use it (here large on purpose: a prediction turns into abstention)."""
    counts = np.array([[560, 440, 0], [900, 100, 0]])
    delta = 9.5e-7
    path = tmp_path / "counts.txt"
    path.write_text(format_header("sample", {"sigma": "0.25", "noise": "discrete", "grid": 255,
                                             "delta": repr(delta)}) + "\n"
                    + "".join(format_count_row(c, 0) for c in counts))
    out = tmp_path / "out"
    assert main(["report", "--counts", str(path), "--k", "1", "--sigma", "0.25",
                 "--alpha", "0.001", "--out", str(out)]) == 0
    rows = [line.split("\t") for line in (out / "radii.tsv").read_text().splitlines()]
    assert [r[2] for r in rows[1:]] == ["-1", "0"]  # abstains on the first row
    plain = topk_bounds.predict(counts, k=1, alpha=0.001)
    assert not plain.abstained.any()  # without delta it would have answered
    direct = topk_bounds.certify(counts, [0, 0], k=1, sigma=0.25, alpha=0.001, delta=delta)
    np.testing.assert_array_equal(read_radii(out / "radii.tsv")["top-1"], direct.radius)


@pytest.mark.parametrize("argv, message", [
    (["report", "--out", "X"], "nothing to report"),
    (["report", "A", "--out", "X", "--name", "a", "--name", "b"], "given 2 time(s) for 1 curve(s)"),
    (["report", "--counts", "C", "--out", "X"], "--counts needs --sigma and --alpha"),
    (["report", "missing.tsv", "--out", "X"], "missing.tsv"),
])
def test_report_cli_errors_are_one_line_with_exit_status_2(tmp_path, capsys, argv, message):
    argv = [str(tmp_path / a) if a in ("A", "X", "C") else a for a in argv]
    if str(tmp_path / "A") in argv:
        _certify_tsv(tmp_path / "A", [0.5])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "X").exists()  # nothing is written on failure


def test_report_cli_rejects_a_bad_grid(capsys):
    with pytest.raises(SystemExit) as info:
        main(["report", "a.tsv", "--out", "o", "--grid", "0,-1"])
    assert info.value.code == 2
    assert "--grid must hold finite radii >= 0" in capsys.readouterr().err


# -- hostile input (issue 12) -----------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("idx\tradius\n0\t0.5\n1\tnan\n", r"line 3: radius 'nan' is not a number"),
    ("idx\tradius\tradius_top2\n0\t0.5\t0.7\n", "has both a 'radius' column and 'radius_top2'"),
    ("idx\tradius\tradius\n0\t0.5\t0.7\n", "line 1: the column 'radius' appears twice"),
    ("idx\tlabel\tradius\n0\t1.5\t0.5\n", r"line 2: label '1.5' is not an integer"),
    ("idx\tradius\n0\t0.5\n\n1\t\n", r"line 4: radius '' is not a number"),
])
def test_read_radii_refuses_ambiguous_or_nan_columns(tmp_path, text, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        read_radii(path)
    assert "bad.tsv" in str(info.value)


@pytest.mark.parametrize("content, message", [
    (b"\x1f\x8b\x08\x00", "line 1: not a text file: it is gzip-compressed"),
    ("idx\tradius\n0\t0.5\n".encode("utf-16"), "UTF-16"),
    (b"idx\tradius\n0\t0.\xff\n", r"line 2: not a text file: byte 0xff"),
])
def test_read_radii_refuses_files_that_are_not_text(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_radii(path)


def test_report_names_curves_from_the_certify_header(tmp_path, capsys):
    counts = tmp_path / "counts.txt"
    counts.write_text("9000 600 300 100 0\n4000 3900 2000 100 1\n10 9000 500 490 0\n")
    tsvs = []
    for k in (1, 3):
        tsvs.append(str(tmp_path / f"k{k}.tsv"))
        assert main(["certify", str(counts), "--k", str(k), "--sigma", "0.25", "--alpha",
                     "0.001", "--out", tsvs[-1]]) == 0
    assert main(["report", *tsvs, "--out", str(tmp_path / "o"), "--grid", "0"]) == 0
    names = [row[0] for row in _md_cells((tmp_path / "o" / "certified_accuracy.md").read_text())[4:]]
    assert names == ["top-1 (simuem, sigma=0.25)", "top-3 (simuem, sigma=0.25)"]
    # the same file twice: the names are told apart by the file names
    copy = tmp_path / "again.tsv"
    copy.write_text(Path(tsvs[0]).read_text())
    assert main(["report", tsvs[0], str(copy), "--out", str(tmp_path / "p"), "--grid", "0"]) == 0
    names = [row[0] for row in _md_cells((tmp_path / "p" / "certified_accuracy.md").read_text())[4:]]
    assert names == ["top-1 (simuem, sigma=0.25) [k1]", "top-1 (simuem, sigma=0.25) [again]"]
    capsys.readouterr()


def test_report_names_option_no_longer_swallows_the_files(tmp_path, capsys):
    a = _certify_tsv(tmp_path / "a.tsv", [0.5, -1.0])
    with pytest.raises(SystemExit) as info:
        main(["report", "--names", "x", a, "--out", str(tmp_path / "o")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--names was replaced by --name" in err
    assert main(["report", "--name", "x", a, "--out", str(tmp_path / "o")]) == 0
    assert "| x " in (tmp_path / "o" / "certified_accuracy.md").read_text()


def test_report_refuses_cohen_names_that_would_share_a_file(tmp_path, capsys):
    a = _certify_tsv(tmp_path / "a.tsv", [0.5, -1.0])
    b = _certify_tsv(tmp_path / "b.tsv", [0.7, 0.1])
    out = tmp_path / "o"
    code = main(["report", a, b, "--out", str(out), "--cohen", "--name", "ours k=1",
                 "--name", "ours/k=1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "'ours k=1' and 'ours/k=1' would both be written to cohen_ours_k_1.tsv" in err
    assert not out.exists()


def test_report_rejects_bad_digits_before_writing_anything(tmp_path, capsys):
    a = _certify_tsv(tmp_path / "a.tsv", [0.5, -1.0])
    with pytest.raises(SystemExit):
        main(["report", a, "--out", str(tmp_path / "o"), "--digits", "13"])
    assert "--digits must be in 0..12, got '13'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main(["report", a, "--out", str(tmp_path / "o"), "--digits", "0"]) == 0


def test_report_refuses_to_overwrite_its_inputs(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    own = _certify_tsv(out / "certified_accuracy.md", [0.5, -1.0])
    code = main(["report", own, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "is the input file" in err
    assert (out / "certified_accuracy.md").read_text().startswith("idx\tlabel")
    assert sorted(p.name for p in out.iterdir()) == ["certified_accuracy.md"]


def test_report_refuses_adaptive_count_files(tmp_path, capsys):
    path = tmp_path / "c.txt"
    path.write_text(format_header("sample", {"mode": "adaptive"}) + "\n90 10 0\n")
    code = main(["report", "--counts", str(path), "--sigma", "0.5", "--alpha", "0.001",
                 "--out", str(tmp_path / "o")])
    assert code == 2 and "sampled adaptively" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_report_out_must_be_a_directory(tmp_path, capsys):
    a = _certify_tsv(tmp_path / "a.tsv", [0.5])
    assert main(["report", a, "--out", a]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err


def test_report_without_matplotlib_writes_the_tables_and_says_so(tmp_path):
    a = _certify_tsv(tmp_path / "a.tsv", [0.5, -1.0])
    out = tmp_path / "o"
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from topk_bounds.cli import main\n"
            f"sys.exit(main(['report', {a!r}, '--out', {str(out)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ("topk-bounds report: note: plots skipped, they need matplotlib "
                           "(install topk-bounds[plot]); the tables were written\n")
    assert sorted(p.name for p in out.iterdir()) == ["certified_accuracy.md",
                                                     "certified_accuracy.tex"]


def test_write_report_is_all_or_nothing(tmp_path, monkeypatch):
    from topk_bounds.report import write_report
    from topk_bounds.report import table as table_module

    def broken_latex(self, digits=3):
        raise RuntimeError("fails after the plots and the Markdown were rendered")

    monkeypatch.setattr(table_module.CertifiedAccuracyTable, "to_latex", broken_latex)
    with pytest.raises(RuntimeError):
        write_report(_table(), tmp_path / "o", plots=False)
    assert not (tmp_path / "o").exists()


def test_write_report_adds_to_a_group(tmp_path):
    from topk_bounds.io import AtomicGroup
    from topk_bounds.report import write_report

    with pytest.raises(RuntimeError):
        with AtomicGroup() as group:
            paths = write_report(_table(), tmp_path, plots=False, group=group)
            write_radii(tmp_path / "r.tsv", [0, 1, 2], {"top-1": [0.3, -0.1, 0.8]}, group=group)
            raise RuntimeError("a later step fails")
    assert [p.name for p in paths] == ["certified_accuracy.md", "certified_accuracy.tex"]
    assert list(tmp_path.iterdir()) == []


def test_write_radii_header_names_the_curves_in_a_report(tmp_path, capsys):
    path = write_radii(tmp_path / "r.tsv", [0, 1], {"top-1": [0.5, -1.0], "top-2": [0.7, 0.2]},
                       header={"sigma": 0.5, "method": "ranked"})
    assert read_radii(path)["top-2"].tolist() == [0.7, 0.2]
    assert main(["report", str(path), "--out", str(tmp_path / "o"), "--grid", "0"]) == 0
    names = [row[0] for row in _md_cells((tmp_path / "o" / "certified_accuracy.md").read_text())[4:]]
    assert names == ["top-1 (ranked, sigma=0.5)", "top-2 (ranked, sigma=0.5)"]
    capsys.readouterr()


# -- adaptive files (sample --target-radius) ---------------------------------------------------

#: (label, decision, stop_radius, n, looks, counts) of six inputs, two classes; the schedule
#: is 128, 256, 1000 and the target 0.25.
ADAPTIVE_ROWS = [
    (0, "certified", 0.41, 128, 1, [128, 0]),
    (1, "futile", -0.2, 128, 1, [100, 28]),
    (0, "certified", 0.26, 256, 2, [250, 6]),
    (0, "max_n", 0.24, 1000, 3, [930, 70]),
    (1, "certified", float("inf"), 1000, 3, [0, 1000]),
    (0, "futile", 0.1, 256, 2, [200, 56]),
]


def _adaptive_file(path, rows=ADAPTIVE_ROWS, n_rows=None, **fields):
    from topk_bounds.report.adaptive import column_line, format_row

    meta = dict(mode="adaptive", target_radius=0.25, k=1, alpha=0.001, method="ranked",
                max_n=1000, looks="128,256,1000", sigma=0.5, classes=2,
                rows=len(rows) if n_rows is None else n_rows, noise="gaussian")
    meta.update(fields)
    text = format_header("sample", meta, version=2) + "\n" + column_line(2) + "\n"
    text += "".join(format_row(i, *row) for i, row in enumerate(rows))
    path.write_text(text)
    return str(path)


def test_report_of_an_adaptive_file_summarizes_its_decisions_and_samples(tmp_path, capsys):
    path = _adaptive_file(tmp_path / "adaptive.tsv")
    out = tmp_path / "rep"
    assert main(["report", path, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["adaptive.md", "adaptive_samples.pdf",
                                                      "adaptive_samples.png"]
    assert (out / "adaptive_samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "adaptive_samples.pdf").read_bytes()[:5] == b"%PDF-"
    md = (out / "adaptive.md").read_text()
    # by hand: 3 of 6 certified; n = 128, 128, 256, 1000, 1000, 256: mean 2768 / 6 =
    # 461.33, median (256 + 256) / 2 = 256, max 1000; 6,000 / 2,768 = 2.17x fewer
    assert "Certified top-1 accuracy at radius r = 0.25: **0.500** (3 of 6 inputs)" in md
    assert "| certified | 3 | 50.0% | 461 | 256 |" in md  # (128 + 256 + 1000) / 3
    assert "| futile | 2 | 33.3% | 192 | 192 |" in md
    assert "| max_n | 1 | 16.7% | 1,000 | 1,000 |" in md
    assert "mean 461, median 256, max 1,000 (max_n = 1,000)" in md
    assert "In all 2,768 noisy forward passes, against 6,000" in md and "2.2x fewer" in md
    assert "| 1 | 128 | 2 | 1 | 1 | 0 |" in md and "| 3 | 1,000 | 2 | 1 | 0 | 1 |" in md
    stdout = capsys.readouterr().out
    assert md in stdout and f"wrote {out / 'adaptive.md'}" in stdout


def test_read_adaptive_file_returns_the_rows_and_header(tmp_path):
    from topk_bounds.report import read_adaptive_file

    found = read_adaptive_file(_adaptive_file(tmp_path / "a.tsv"))
    assert found.certified.tolist() == [True, False, True, False, True, False]
    assert found.n.tolist() == [128, 128, 256, 1000, 1000, 256]
    assert found.radius[4] == float("inf") and found.radius[1] == -0.2
    assert found.counts[3].tolist() == [930, 70] and found.schedule.tolist() == [128, 256, 1000]
    assert (found.target, found.k, found.alpha, found.max_n) == (0.25, 1, 0.001, 1000)
    assert repr(found).endswith("N=6, k=1, target=0.25, certified=3/6, mean n=461.333 of "
                                "max_n=1000)")


def test_report_of_an_adaptive_file_without_matplotlib_writes_the_summary(tmp_path):
    path = _adaptive_file(tmp_path / "a.tsv")
    out = tmp_path / "o"
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from topk_bounds.cli import main\n"
            f"sys.exit(main(['report', {path!r}, '--out', {str(out)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "plots skipped, they need matplotlib" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["adaptive.md"]


def test_report_of_an_adaptive_file_beside_certify_outputs_writes_both(tmp_path, capsys):
    a = _certify_tsv(tmp_path / "k1.tsv", [0.3, -0.1, 0.8, 0.0])
    path = _adaptive_file(tmp_path / "adaptive.tsv")
    out = tmp_path / "o"
    assert main(["report", a, path, "--out", str(out), "--grid", "0,0.5"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "adaptive.md", "adaptive_samples.pdf", "adaptive_samples.png",
        "certified_accuracy.md", "certified_accuracy.pdf", "certified_accuracy.png",
        "certified_accuracy.tex"]
    stdout = capsys.readouterr().out
    assert "| k1  | 0.500 | 0.250 " in stdout and "|\n\n# Adaptive certification: adaptive.tsv" in stdout


def _replace(rows, i, **change):
    keys = ("label", "decision", "radius", "n", "looks", "counts")
    row = dict(zip(keys, rows[i]))
    row.update(change)
    return rows[:i] + [tuple(row[k] for k in keys)] + rows[i + 1:]


@pytest.mark.parametrize("rows, fields, message", [
    (_replace(ADAPTIVE_ROWS, 0, radius=0.2), {},
     "line 3: stop_radius 0.2 contradicts decision certified at the target radius 0.25"),
    (_replace(ADAPTIVE_ROWS, 1, radius=0.3), {},
     "line 4: stop_radius 0.3 contradicts decision futile"),
    (_replace(ADAPTIVE_ROWS, 2, counts=[250, 5]), {}, "line 5: the counts sum to 255, not n = 256"),
    (_replace(ADAPTIVE_ROWS, 2, n=300, counts=[250, 50]), {},
     "line 5: n = 300 is not the sample size of look 2 of the schedule"),
    (_replace(ADAPTIVE_ROWS, 5, decision="max_n"), {}, "line 8: decision max_n with n = 256"),
    (_replace(ADAPTIVE_ROWS, 1, label=2), {}, "line 4: label 2 is outside 0..1"),
    (ADAPTIVE_ROWS[:4], {"rows": 6}, "holds 4 of the 6 rows its header announces (an "
                                     "unfinished run"),
    (ADAPTIVE_ROWS, {"looks": "128,256"}, "its header's looks='128,256' must increase to "
                                          "max_n=1000"),
    (ADAPTIVE_ROWS, {"classes": 3}, "line 2: expected the column names"),
    (ADAPTIVE_ROWS, {"alpha": "often"}, "its header's alpha='often' is not a number"),
])
def test_report_refuses_an_inconsistent_adaptive_file_with_one_line(tmp_path, capsys, rows,
                                                                    fields, message):
    path = _adaptive_file(tmp_path / "a.tsv", rows=rows, n_rows=fields.pop("rows", None),
                          **fields)
    assert main(["report", path, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: " in err and message in err, err
    assert not (tmp_path / "o").exists()


def test_report_refuses_an_edited_certified_column(tmp_path, capsys):
    path = Path(_adaptive_file(tmp_path / "a.tsv"))
    lines = path.read_text().splitlines(keepends=True)
    cells = lines[3].split("\t")
    cells[2] = "1"  # a futile input marked certified
    lines[3] = "\t".join(cells)
    path.write_text("".join(lines))
    assert main(["report", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "line 4: certified=1 contradicts decision futile" in capsys.readouterr().err


def test_report_takes_at_most_one_adaptive_file(tmp_path, capsys):
    a = _adaptive_file(tmp_path / "a.tsv")
    b = _adaptive_file(tmp_path / "b.tsv")
    assert main(["report", a, b, "--out", str(tmp_path / "o")]) == 2
    assert "give at most one adaptive file" in capsys.readouterr().err


def test_report_counts_refuses_an_adaptive_file_and_says_how_to_report_it(tmp_path, capsys):
    path = _adaptive_file(tmp_path / "a.tsv")
    assert main(["report", "--counts", path, "--sigma", "0.5", "--alpha", "0.001",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sampled adaptively" in err
    assert f"'topk-bounds report {path} --out DIR'" in err


def test_certify_refuses_an_adaptive_file_with_one_line(tmp_path, capsys):
    path = _adaptive_file(tmp_path / "a.tsv")
    assert main(["certify", path, "--k", "1", "--sigma", "0.5", "--alpha", "0.001"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "sampled adaptively (header mode=adaptive)" in captured.err


def test_adaptive_report_is_all_or_nothing(tmp_path, monkeypatch):
    from topk_bounds.report import adaptive

    def broken(found, title=None):
        raise RuntimeError("fails after the histogram was rendered")

    monkeypatch.setattr(adaptive, "adaptive_markdown", broken)
    with pytest.raises(RuntimeError):
        main(["report", _adaptive_file(tmp_path / "a.tsv"), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()
