"""Smoke test of the demo pipeline (sampler.demo) at a reduced size, on the CPU.

The full demo certifies 200 test images with n = 5000 after 40 epochs; here 100 images
with n = 500 after 10 epochs (the ``--quick`` size), which takes under 10 s on two cores.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

from sampler.demo import run_demo  # noqa: E402
from topk_bounds.cli import main  # noqa: E402
from topk_bounds.io import read_counts  # noqa: E402
from topk_bounds.report import certified_accuracy, read_radii  # noqa: E402

OUTPUTS = ("counts.txt", "radii.tsv", "certified_accuracy.png", "certified_accuracy.pdf",
           "certified_accuracy.md", "certified_accuracy.tex")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, n=500, num_test=100, epochs=10, seed=0)


def test_demo_writes_every_output_file(quick):
    out, result = quick
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    assert {p.name for p in result.paths} == set(OUTPUTS)


def test_demo_classifier_is_far_above_chance(quick):
    _, result = quick
    # 10 balanced classes: chance is 0.1. The noise-trained CNN gets about 0.96 clean.
    assert result.clean_accuracy > 0.8
    assert result.smoothed_accuracy > 0.7


def test_demo_counts_file_has_n_samples_per_image(quick):
    out, _ = quick
    data = read_counts(out / "counts.txt")
    assert data.counts.shape == (100, 10)
    assert np.all(data.counts.sum(axis=1) == 500)


def test_demo_radii_table_has_a_column_per_k(quick):
    out, _ = quick
    header = (out / "radii.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["idx", "label", "predict", "radius_top1", "radius_top2", "radius_top3"]
    radii = read_radii(out / "radii.tsv")
    assert all(r.shape == (100,) and not np.isnan(r).any() for r in radii.values())


def test_demo_top3_certified_accuracy_is_at_least_top1_at_every_radius(quick):
    out, _ = quick
    radii = read_radii(out / "radii.tsv")
    grid = np.linspace(0, 3, 301)
    top1, top2, top3 = (certified_accuracy(radii[f"top-{k}"], grid) for k in (1, 2, 3))
    assert np.all(top3 >= top2) and np.all(top2 >= top1)
    assert top1[0] > 0.5  # most labels are certified in the top-1 at all


def test_demo_markdown_table_lists_each_k(quick):
    out, _ = quick
    md = (out / "certified_accuracy.md").read_text()
    assert all(f"| top-{k} |" in md for k in (1, 2, 3))


def test_report_on_the_demo_counts_reproduces_its_radii_file(quick, tmp_path, capsys):
    out, _ = quick
    assert main(["report", "--counts", str(out / "counts.txt"), "--k", "1,2,3",
                 "--sigma", "0.5", "--alpha", "0.001", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "radii.tsv").read_bytes() == (out / "radii.tsv").read_bytes()


def test_demo_twice_gives_identical_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        run_demo(out, n=200, num_test=8, epochs=2, seed=3)
    for name in ("counts.txt", "radii.tsv", "certified_accuracy.md"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_demo_restores_global_torch_state(tmp_path):
    threads = torch.get_num_threads()
    rng_state = torch.get_rng_state()
    run_demo(tmp_path, n=50, num_test=2, epochs=1, threads=1)
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.equal(torch.get_rng_state(), rng_state)


def test_demo_cli_rejects_too_many_test_images_before_training(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "o"), "--num-test", "1000"]) == 2
    err = capsys.readouterr().err
    assert "num_test must be in 1..360" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
