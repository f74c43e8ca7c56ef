"""sample_counts and ``topk-bounds sample`` under torchrun: 2 CPU processes, gloo backend."""

from __future__ import annotations

import os
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover - some builds lack it
    pytest.skip("torch.distributed is not available in this torch build",
                allow_module_level=True)

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import _sampler_models as models  # noqa: E402
from _children import torchrun  # noqa: E402

from sampler import sample_counts, two_stage_counts  # noqa: E402
from topk_bounds.cli import main  # noqa: E402

XS = [-0.5, 0.2, 0.75, 1.0, -1.2]
LABELS = [0, 1, 2, 2, 0]

_WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    import torch.distributed as dist
    import _sampler_models as models
    from sampler import ModelError, sample_counts, two_stage_counts
    from topk_bounds.cli import main

    out = sys.argv[1]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    xs = torch.tensor({xs}).reshape(-1, 1)
    model = models.NearestCentre()
    seeded = sample_counts(model, xs, sigma=1.0, n=1000, batch_size=100, seed=3, timeout=60)
    unseeded = sample_counts(model, xs, sigma=1.0, n=1000, batch_size=100)
    # One input, one block: rank 1 draws nothing and must still learn the width.
    idle = sample_counts(model, xs[:1], sigma=1.0, n=50, batch_size=100, seed=3)
    two = two_stage_counts(model, xs, sigma=1.0, n0=64, n=300, batch_size=128, seed=3)
    try:  # different inputs on the two ranks: both must refuse (and neither hang)
        sample_counts(model, xs + rank, sigma=1.0, n=100, batch_size=100, seed=3)
        mismatch = "no error"
    except ValueError as exc:
        mismatch = str(exc)
    try:  # gaussian noise on one rank, discrete on the other: both must refuse
        grid_xs = torch.tensor([[0.0], [51 / 255]])
        sample_counts(model, grid_xs, sigma=1.0, n=100, batch_size=100, seed=3,
                      noise="discrete" if rank else "gaussian")
        noise_mismatch = "no error"
    except ValueError as exc:
        noise_mismatch = str(exc)
    try:  # NaN logits on rank 0's share only: both ranks must raise the same error
        sample_counts(models.NaNAbove(-10.0 if rank == 0 else 10.0), xs[:1], sigma=1.0,
                      n=256, batch_size=100, seed=3)
        nan = "no error"
    except ModelError as exc:
        nan = str(exc)
    np.savez(f"{{out}}/rank{{rank}}.npz", seeded=seeded, unseeded=unseeded, idle=idle,
             selection=two.selection, estimation=two.estimation, mismatch=mismatch, nan=nan,
             noise_mismatch=noise_mismatch)
    status = main(["sample", "--model", "_sampler_models:nearest_centre", "--inputs",
                   f"{{out}}/data.pt", "--sigma", "1.0", "--n", "300", "--batch", "64",
                   "--seed", "3", "--out", f"{{out}}/dist.txt", "--n0", "20", "--no-progress"])
    dist.destroy_process_group()
    sys.exit(status)
""").format(xs=XS)


def _cli_args(out, data):
    return ["sample", "--model", "_sampler_models:nearest_centre", "--inputs", data,
            "--sigma", "1.0", "--n", "300", "--batch", "64", "--seed", "3", "--out", out,
            "--n0", "20", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run the worker under torchrun once; the tests below check its outputs."""
    work = tmp_path_factory.mktemp("dist")
    torch.save({"inputs": torch.tensor(XS).reshape(-1, 1), "labels": torch.tensor(LABELS)},
               work / "data.pt")
    (work / "worker.py").write_text(_WORKER)
    torchrun([str(work / "worker.py"), str(work)], cwd=work)
    # And the CLI as the entry point, initialising torch.distributed itself. The "--" stops
    # torchrun from reading "--n" as an abbreviation of its own options.
    torchrun(["-m", "topk_bounds.cli", "--", *_cli_args(str(work / "own.txt"),
                                                   str(work / "data.pt"))], cwd=work)
    return work, [np.load(work / f"rank{r}.npz") for r in range(2)]


def test_both_ranks_return_identical_totals_that_sum_to_n(runs):
    _, (rank0, rank1) = runs
    for key in ("seeded", "unseeded", "idle", "selection", "estimation"):
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
    assert rank0["seeded"].sum(axis=1).tolist() == [1000] * len(XS)
    assert rank0["unseeded"].sum(axis=1).tolist() == [1000] * len(XS)
    assert rank0["idle"].tolist() == sample_counts(
        models.NearestCentre(), torch.tensor(XS[:1]).reshape(-1, 1), sigma=1.0, n=50,
        batch_size=100, seed=3).tolist()


def test_ranks_that_pass_different_inputs_all_raise_instead_of_summing_them(runs):
    _, ranks = runs
    for rank in ranks:
        assert str(rank["mismatch"]).startswith("every rank must call sample_counts with the "
                                                "same inputs"), str(rank["mismatch"])


def test_ranks_that_draw_different_noise_all_raise(runs):
    _, ranks = runs
    for rank in ranks:
        assert str(rank["noise_mismatch"]).startswith("every rank must call sample_counts "
                                                      "with the same"), str(rank["noise_mismatch"])
        assert "noise" in str(rank["noise_mismatch"])


def test_nan_logits_on_one_rank_make_every_rank_raise_the_same_model_error(runs):
    _, ranks = runs
    # n = 256 is one block (1-D inputs have blocks of 4096 samples), drawn by rank 0, whose
    # model returns NaN everywhere; rank 1's model is fine but draws nothing. The samples
    # without a class are all-reduced with the counts, so both ranks raise.
    messages = [str(rank["nan"]) for rank in ranks]
    assert messages[0] == messages[1], messages
    assert "for 256 of the 256 samples of input 0" in messages[0], messages


def test_distributed_counts_equal_single_process_counts(runs):
    _, (rank0, _) = runs
    xs = torch.tensor(XS).reshape(-1, 1)
    single = sample_counts(models.NearestCentre(), xs, sigma=1.0, n=1000, batch_size=100,
                           seed=3)
    np.testing.assert_array_equal(rank0["seeded"], single)
    two = two_stage_counts(models.NearestCentre(), xs, sigma=1.0, n0=64, n=300,
                           batch_size=128, seed=3)
    np.testing.assert_array_equal(rank0["selection"], two.selection)
    np.testing.assert_array_equal(rank0["estimation"], two.estimation)


def test_cli_under_torchrun_writes_the_single_process_file(runs, monkeypatch):
    work, _ = runs
    monkeypatch.syspath_prepend(HERE)
    monkeypatch.chdir(work)
    assert main(_cli_args(str(work / "single.txt"), str(work / "data.pt"))) == 0
    single = (work / "single.txt").read_bytes()
    assert (work / "dist.txt").read_bytes() == single
    assert (work / "own.txt").read_bytes() == single
    assert (work / "dist.txt.n0").read_bytes() == (work / "single.txt.n0").read_bytes()
