"""Tests of sampler.sample_counts and sampler.two_stage_counts (CPU, torch needed).

Statistical tests use a significance level of 1e-6 with fixed seeds: they are
deterministic, and a correct sampler would fail them with probability about 1e-6.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy.stats import chi2_contingency, chisquare

torch = pytest.importorskip("torch")

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import _sampler_models as models  # noqa: E402

from sampler import ModelError, TwoStageCounts, sample_counts, two_stage_counts  # noqa: E402
from sampler import streams  # noqa: E402
from sampler.streams import block_size  # noqa: E402

ALPHA = 1e-6  # significance of every statistical test


def _x(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 1)


def test_counts_pass_chi_square_against_gaussian_cdf_probabilities():
    xs, sigma, n = (-0.5, 0.2, 0.75), 1.0, 20_000
    counts = sample_counts(models.NearestCentre(), _x(*xs), sigma=sigma, n=n,
                           batch_size=1000, seed=0)
    assert counts.dtype == np.int64 and counts.shape == (3, 3)
    assert counts.sum(axis=1).tolist() == [n] * 3
    for row, x in zip(counts, xs):
        expected = n * models.class_probabilities(x, sigma)
        assert chisquare(row, expected).pvalue > ALPHA, (x, row, expected)


def test_inputs_sharing_forward_passes_pass_chi_square():
    # n = 50 < batch_size: 20 inputs share each forward pass and blocks straddle passes.
    n_inputs, n, sigma, x = 400, 50, 0.8, 0.2
    recorder = models.BatchRecorder()
    counts = sample_counts(recorder, _x(*[x] * n_inputs), sigma=sigma, n=n, batch_size=1000,
                           seed=1)
    assert max(recorder.sizes) == 1000 and len(recorder.sizes) == n_inputs * n // 1000
    assert counts.sum(axis=1).tolist() == [n] * n_inputs
    expected = n_inputs * n * models.class_probabilities(x, sigma)
    assert chisquare(counts.sum(axis=0), expected).pvalue > ALPHA


def test_batching_across_inputs_gives_the_same_distribution():
    # Homogeneity of the totals of one-input-per-pass and many-inputs-per-pass sampling,
    # with different seeds (so the samples are independent).
    xs = _x(*[0.3] * 200)
    packed = sample_counts(models.NearestCentre(), xs, sigma=1.0, n=60, batch_size=997,
                           seed=2).sum(axis=0)
    alone = sample_counts(models.NearestCentre(), xs[:1], sigma=1.0, n=200 * 60,
                          batch_size=50, seed=3).sum(axis=0)
    assert chi2_contingency(np.stack([packed, alone])).pvalue > ALPHA


WIDE = 4096  # scalars per input: blocks of block_size(WIDE) = 128 samples
WIDE_BLOCK = block_size(WIDE)


def _wide(*values: float) -> torch.Tensor:
    """Inputs of WIDE scalars whose first coordinate is ``values`` (NearestCentre reads only it)."""
    x = torch.zeros(len(values), WIDE)
    x[:, 0] = torch.tensor(values)
    return x


@pytest.mark.parametrize("batch_size", [1, 7, 100, WIDE_BLOCK, 333, 5000])
def test_rows_do_not_depend_on_batch_size(batch_size):
    xs = _wide(-0.4, 0.1, 0.9, 0.3, 2.0)
    n = 2 * WIDE_BLOCK + 44  # a short last block
    reference = sample_counts(models.NearestCentre(), xs, sigma=1.0, n=n, batch_size=64,
                              seed=11)
    counts = sample_counts(models.NearestCentre(), xs, sigma=1.0, n=n,
                           batch_size=batch_size, seed=11)
    np.testing.assert_array_equal(counts, reference)


@pytest.mark.parametrize("batch_size", [999, 4096, 5000])
def test_rows_do_not_depend_on_batch_size_with_long_blocks(batch_size):
    # 1-D inputs have blocks of 4096 samples: passes cut blocks, and blocks fill passes.
    xs = _x(-0.4, 0.3, 0.9)
    n = block_size(1) + 100
    reference = sample_counts(models.NearestCentre(), xs, sigma=1.0, n=n, batch_size=512,
                              seed=12)
    counts = sample_counts(models.NearestCentre(), xs, sigma=1.0, n=n,
                           batch_size=batch_size, seed=12)
    np.testing.assert_array_equal(counts, reference)


def test_rows_depend_only_on_seed_and_global_index():
    xs = _x(-0.4, 0.1, 0.9, 0.3)
    whole = sample_counts(models.NearestCentre(), xs, sigma=1.0, n=500, batch_size=300,
                          seed=5)
    for i in range(4):  # one input per call, told its global index
        row = sample_counts(models.NearestCentre(), xs[i:i + 1], sigma=1.0, n=500,
                            batch_size=300, seed=5, indices=[i])
        np.testing.assert_array_equal(row[0], whole[i])
    reversed_ = sample_counts(models.NearestCentre(), xs.flip(0), sigma=1.0, n=500,
                              batch_size=300, seed=5, indices=[3, 2, 1, 0])
    np.testing.assert_array_equal(reversed_[::-1], whole)


def test_same_seed_gives_same_counts_and_different_seed_different_counts():
    xs = _x(0.0, 0.5)
    first = sample_counts(models.NearestCentre(), xs, sigma=1.0, n=2000, batch_size=256,
                          seed=7)
    again = sample_counts(models.NearestCentre(), xs, sigma=1.0, n=2000, batch_size=256,
                          seed=7)
    other = sample_counts(models.NearestCentre(), xs, sigma=1.0, n=2000, batch_size=256,
                          seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_seed_none_draws_fresh_entropy_each_call():
    xs = _x(0.0)
    a = sample_counts(models.NearestCentre(), xs, sigma=1.0, n=5000, batch_size=1000)
    b = sample_counts(models.NearestCentre(), xs, sigma=1.0, n=5000, batch_size=1000)
    assert a.sum() == b.sum() == 5000 and not np.array_equal(a, b)


def test_num_classes_pads_columns_and_may_not_be_narrower_than_the_model():
    counts = sample_counts(models.NearestCentre(), _x(0.0), sigma=1.0, n=300, batch_size=100,
                           num_classes=5, seed=0)
    assert counts.shape == (1, 5) and counts[:, 3:].sum() == 0 and counts.sum() == 300
    with pytest.raises(ValueError, match="num_classes must be at least the model's output "
                                         "width 3, got 2"):
        sample_counts(models.NearestCentre(), _x(0.0), sigma=1.0, n=10, batch_size=10,
                      num_classes=2)


def test_model_is_in_eval_mode_without_gradients_and_modes_are_restored():
    model = models.ModeRecorder()
    model.train()
    model.norm.eval()  # a mixed state must come back exactly
    sample_counts(model, _x(0.0, 1.0), sigma=0.5, n=300, batch_size=128, seed=0)
    assert model.seen and all(flags == (False, False, False, False) for flags in model.seen)
    assert (model.training, model.dropout.training, model.norm.training) == (True, True, False)


def test_modes_are_restored_when_the_model_raises():
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom\nsecond line")

    model = Broken().train()
    with pytest.raises(ModelError, match=r"^the model failed on a batch of shape \(10, 1\): "
                                         r"RuntimeError: boom$"):
        sample_counts(model, _x(0.0), sigma=1.0, n=10, batch_size=10, seed=0)
    assert model.training


def test_logits_of_the_wrong_shape_are_a_clear_error():
    with pytest.raises(ValueError, match=r"logits of shape \(10, num_classes\).*got \(10,\)"):
        sample_counts(lambda x: x[:, 0], _x(0.0), sigma=1.0, n=10, batch_size=10, seed=0)


def test_a_model_without_parameters_runs_on_the_inputs_device():
    counts = sample_counts(lambda x: torch.cat([-x, x], 1), _x(5.0), sigma=1.0, n=100,
                           batch_size=50, seed=0, device="cpu")
    assert counts.tolist() == [[0, 100]]


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0), "n must be a positive integer, got 0"),
    (dict(n=2.5), "n must be a positive integer, got 2.5"),
    (dict(batch_size=-1), "batch_size must be a positive integer, got -1"),
    (dict(sigma=0.0), "sigma must be a finite number > 0, got 0.0"),
    (dict(sigma=float("nan")), "sigma must be a finite number > 0, got nan"),
    (dict(seed=-3), "seed must be None or an integer >= 0, got -3"),
    (dict(num_classes=0), "num_classes must be a positive integer, got 0"),
    (dict(indices=[0]), r"indices must be a 1-D sequence of 2 integers"),
    (dict(indices=[0, -1]), "indices must be >= 0, got -1"),
    (dict(inputs=torch.zeros(0, 1)), r"inputs must have shape \(B, ...\) with B >= 1, "
                                     r"got \(0, 1\)"),
    (dict(inputs=torch.zeros(2, 1, dtype=torch.int64)),
     "inputs must be a floating-point tensor, got dtype torch.int64"),
    (dict(inputs=np.zeros((2, 1))), "inputs must be a torch.Tensor"),
    (dict(model=3), "model must be a torch.nn.Module or a callable, got int"),
    (dict(distributed=True), "distributed=True needs torch.distributed to be initialized"),
    (dict(progress="yes"), "progress must be a bool or have an update"),
])
def test_invalid_arguments_raise_value_error_naming_the_argument(kwargs, message):
    call = dict(model=models.NearestCentre(), inputs=_x(0.0, 1.0), sigma=1.0, n=10,
                batch_size=10, seed=0)
    call.update(kwargs)
    model, inputs = call.pop("model"), call.pop("inputs")
    with pytest.raises(ValueError, match=message):
        sample_counts(model, inputs, **call)


def test_progress_object_is_told_of_every_sample():
    class Tally:
        total = 0

        def update(self, k):
            self.total += k

    tally = Tally()
    sample_counts(models.NearestCentre(), _x(0.0, 1.0, 2.0), sigma=1.0, n=333,
                  batch_size=100, seed=0, progress=tally)
    assert tally.total == 3 * 333


def test_two_stage_estimation_equals_sample_counts_and_selection_is_a_disjoint_stream():
    xs = _x(-0.5, 0.2, 0.75)
    result = two_stage_counts(models.NearestCentre(), xs, sigma=1.0, n0=1000, n=1000,
                              batch_size=256, seed=4)
    assert isinstance(result, TwoStageCounts)
    assert repr(result) == "TwoStageCounts(inputs=3, classes=3, n0=1000, n=1000)"
    direct = sample_counts(models.NearestCentre(), xs, sigma=1.0, n=1000, batch_size=256,
                           seed=4)
    np.testing.assert_array_equal(result.estimation, direct)
    assert result.selection.sum(axis=1).tolist() == [1000] * 3
    assert not np.array_equal(result.selection, result.estimation)
    # The selection stage is an independent sample of the same distribution.
    for sel, est in zip(result.selection, result.estimation):
        assert chi2_contingency(np.stack([sel, est])).pvalue > ALPHA


def test_two_stage_candidates_are_sorted_by_selection_count_ties_to_the_smaller_label():
    result = TwoStageCounts(selection=np.array([[3, 5, 5, 0], [0, 0, 9, 1]]),
                            estimation=np.array([[1, 1, 1, 1], [1, 1, 1, 1]]))
    assert result.candidates(3).tolist() == [[1, 2, 0], [2, 3, 0]]
    assert result.candidates().tolist() == [[1], [2]]
    with pytest.raises(ValueError, match="k must be an integer in 1..4, got 5"):
        result.candidates(5)


def test_two_stage_validates_n0():
    with pytest.raises(ValueError, match="n0 must be a positive integer, got 0"):
        two_stage_counts(models.NearestCentre(), _x(0.0), sigma=1.0, n0=0, n=10,
                         batch_size=10)


def test_forward_batches_never_exceed_batch_size():
    recorder = models.BatchRecorder()
    sample_counts(recorder, _x(0.0, 1.0, 0.5), sigma=1.0, n=1000, batch_size=300, seed=0)
    assert max(recorder.sizes) <= 300 and sum(recorder.sizes) == 3000


_MEMORY_SCRIPT = textwrap.dedent("""
    import json, sys, torch
    sys.path.insert(0, sys.argv[1])
    import _sampler_models as models
    from sampler import sample_counts
    torch.set_num_threads(1)
    x = torch.zeros(1, 256)  # 256-dim inputs: O(n) noise would be n * 1 KiB
    def peak():  # VmHWM: ru_maxrss would keep the (larger) peak of pytest, our parent
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024
    sample_counts(models.NearestCentre(), x, sigma=1.0, n=2_000, batch_size=1000, seed=0)
    small = peak()
    counts = sample_counts(models.NearestCentre(), x, sigma=1.0, n=200_000, batch_size=1000,
                           seed=0)
    print(json.dumps({"small": small, "large": peak(), "total": int(counts.sum())}))
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's VmHWM")
def test_memory_stays_flat_with_n():
    # 100x more samples; holding them all would take 200 MiB of noise alone.
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, HERE], capture_output=True,
                         text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["total"] == 200_000
    assert result["large"] - result["small"] < 32, result  # MiB


def test_importing_sampler_and_its_cli_does_not_import_torch():
    code = ("import argparse, sys, sampler, sampler.cli; "
            "sampler.cli.configure(argparse.ArgumentParser()); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("scalars", [1, 2, 3, 31, 64, 100, 512, 513, 784, 3072, 150528])
def test_block_size_is_a_power_of_two_in_range_whose_block_fits_the_target(scalars):
    size = block_size(scalars)
    assert streams.BLOCK_MIN <= size <= streams.BLOCK_MAX and size & (size - 1) == 0
    assert size == streams.BLOCK_MIN or size * scalars <= streams.BLOCK_SCALARS
    assert size == streams.BLOCK_MAX or 2 * size * scalars > streams.BLOCK_SCALARS


@pytest.mark.parametrize("n_inputs, n, size, world_size", [
    (1, 1, 128, 1), (3, 300, 128, 2), (5, 1000, 256, 3), (4, 128, 128, 8), (7, 4097, 4096, 2)])
def test_the_ranks_schedules_partition_the_single_process_schedule(
        n_inputs, n, size, world_size, monkeypatch):
    monkeypatch.setattr(streams, "PLAN_BLOCKS", 3)  # many pieces
    words = streams.input_words(9, streams.ESTIMATION, range(n_inputs))

    def blocks(rank, world):
        return [(p, m, seed) for plan in streams.schedule(words, n, size, rank, world)
                for p, m, seed in zip(plan.pos, plan.size, plan.seed)]

    single = blocks(0, 1)
    per_input = streams.blocks_per_input(n, size)
    assert len(single) == n_inputs * per_input
    for pos in range(n_inputs):  # input-major, sizes summing to n, distinct 32-bit seeds
        mine = single[pos * per_input:(pos + 1) * per_input]
        assert {p for p, _, _ in mine} == {pos} and sum(m for _, m, _ in mine) == n
        assert len({seed & 0xFFFFFFFF for _, _, seed in mine}) == per_input
    shares = [blocks(r, world_size) for r in range(world_size)]
    assert sorted(b for share in shares for b in share) == sorted(single)
    assert all(abs(len(a) - len(b)) <= 1 for a in shares for b in shares)  # balanced


def test_seeds_differ_between_streams_seeds_and_indices():
    def seeds(entropy, stream, index):
        words = streams.input_words(entropy, stream, [index])
        return set(streams.block_seeds(words.repeat(50), np.arange(50)).tolist())

    base = seeds(0, streams.ESTIMATION, 3)
    for other in (seeds(0, streams.SELECTION, 3), seeds(1, streams.ESTIMATION, 3),
                  seeds(0, streams.ESTIMATION, 4)):
        assert not base & other
    assert seeds(0, streams.ESTIMATION, 2**62) != base  # huge indices are fine
