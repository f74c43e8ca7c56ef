"""sample_adaptive (sampler.adaptive): adaptive certification from a torch model.

Its samples are a prefix of each input's fixed-n stream (the counts of an input that
stopped after n samples are sample_counts(..., n=n)); they do not depend on the batch size;
forward batches pack many undecided inputs; discrete noise passes its delta to every look;
and the block offset of Request.count that all of this rests on.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import _sampler_models as models  # noqa: E402

from sampler import sample_adaptive, sample_counts  # noqa: E402
from sampler.core import prepare  # noqa: E402
from sampler.discrete import DiscreteGaussianNoise  # noqa: E402
from sampler.streams import ESTIMATION, block_size, input_words, schedule  # noqa: E402
from topk_bounds import certify  # noqa: E402
from topk_bounds.adaptive import look_schedule  # noqa: E402

#: First coordinates of the test inputs: NearestCentre (centres -1, 0, 1.5) gives labels
#: 0, 1, 2 with cuts at -0.5 and 0.75; at sigma 0.5 these range from hopeless to certain.
XS = (-2.0, -1.0, -0.6, -0.4, 0.0, 0.1, 0.5, 0.7, 1.0, 1.5, 2.5, -1.4, 0.3, 1.2, -0.8, -0.78,
      1.04)
LABELS = (0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 0, 1, 2, 0, 0, 2)
#: Scalars per input: 1024 gives blocks of 128 samples (NearestCentre reads only the first).
WIDTH = 1024


def wide(xs, width=WIDTH, dtype=torch.float32) -> torch.Tensor:
    x = torch.zeros(len(xs), width, dtype=dtype)
    x[:, 0] = torch.tensor(xs, dtype=dtype)
    return x


KW = dict(k=1, sigma=0.5, alpha=0.01, radius=0.25, max_n=3000, seed=6)


# --------------------------------------------------------------------------------------
# the block offset of Request.count and streams.schedule
# --------------------------------------------------------------------------------------
def test_schedule_from_a_block_offset_is_the_tail_of_the_full_schedule():
    words = input_words(7, ESTIMATION, [3, 10, 11])
    for n, size, start in [(1000, 128, 256), (1024, 128, 896), (5000, 4096, 4096), (129, 128, 128)]:
        full = [(p, s, seed) for plan in schedule(words, n, size)
                for p, s, seed in zip(plan.pos, plan.size, plan.seed)]
        skip = start // size
        per = -(-n // size)
        tail = [b for j, b in enumerate(full) if j % per >= skip]
        got = [(p, s, seed) for plan in schedule(words, n, size, start=start)
               for p, s, seed in zip(plan.pos, plan.size, plan.seed)]
        assert got == tail, (n, size, start)
        # and the ranks' shares of it still add up to it
        shares = [b for r in range(3) for plan in schedule(words, n, size, r, 3, start)
                  for b in zip(plan.pos, plan.size, plan.seed)]
        assert sorted(shares) == sorted(tail)


@pytest.mark.parametrize("start", [-128, 100, 1000, 1024])
def test_schedule_refuses_an_offset_that_is_not_a_block_boundary_below_n(start):
    with pytest.raises(ValueError, match=f"start must be a multiple of the block size 128 in "
                                         f"0..999, got {start}"):
        next(schedule(input_words(0, ESTIMATION, [0]), 1000, 128, start=start))


def test_counts_of_a_prefix_and_of_the_blocks_after_it_add_up_to_the_full_counts():
    request = prepare(models.NearestCentre(), wide(XS[:5]), sigma=0.5, batch_size=300, seed=2)
    assert request.block == 128
    full = request.count(1000, ESTIMATION)
    head = request.count(384, ESTIMATION)
    tail = request.count(1000, ESTIMATION, start=384)
    np.testing.assert_array_equal(head + tail, full)
    assert tail.sum(axis=1).tolist() == [616] * 5
    with pytest.raises(ValueError, match="start must be a multiple of the block size 128"):
        request.count(1000, ESTIMATION, start=100)


# --------------------------------------------------------------------------------------
# sample_adaptive
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def result():
    return sample_adaptive(models.NearestCentre(), wide(XS), LABELS, batch_size=512, **KW)


def test_the_inputs_take_every_kind_of_decision_at_different_looks(result):
    assert set(result.decision.tolist()) == {"certified", "futile", "max_n"}
    assert len(set(result.n.tolist())) >= 4
    assert result.schedule.tolist() == look_schedule(3000, multiple_of=128).tolist()


def test_counts_of_every_input_are_sample_counts_of_the_samples_it_used(result):
    for n in sorted(set(result.n.tolist())):
        rows = np.flatnonzero(result.n == n)
        fixed = sample_counts(models.NearestCentre(), wide([XS[i] for i in rows]), sigma=0.5,
                              n=n, batch_size=1000, seed=6, indices=rows.tolist(),
                              num_classes=3)
        np.testing.assert_array_equal(result.counts[rows], fixed, err_msg=f"n={n}")


def test_result_does_not_depend_on_the_batch_size(result):
    small = sample_adaptive(models.NearestCentre(), wide(XS), LABELS, batch_size=7, **KW)
    for name in ("certified", "n", "counts", "radius", "looks", "decision", "levels"):
        np.testing.assert_array_equal(getattr(small, name), getattr(result, name), err_msg=name)


def test_every_forward_batch_of_a_look_but_its_last_is_full_and_packs_many_inputs(result):
    model = models.BatchRecorder()
    res = sample_adaptive(model, wide(XS), LABELS, batch_size=512, **KW)
    np.testing.assert_array_equal(res.n, result.n)
    steps = np.diff(np.r_[0, res.schedule])
    expected = []
    for j, m in enumerate(steps[:res.looks.max()].tolist()):
        samples = int((res.looks > j).sum()) * m
        expected += [512] * (samples // 512) + ([samples % 512] if samples % 512 else [])
    assert model.sizes == expected
    # the first look draws 128 samples of each of the 17 inputs: 4 inputs per batch
    assert model.sizes[:4] == [512] * 4


def test_indices_select_the_streams_and_labels_may_be_a_tensor():
    idx = [40 + 3 * i for i in range(len(XS))]
    res = sample_adaptive(models.NearestCentre(), wide(XS), torch.tensor(LABELS),
                          batch_size=512, indices=idx, **KW)
    i = int(np.argmax(res.n))
    fixed = sample_counts(models.NearestCentre(), wide(XS[i:i + 1]), sigma=0.5, n=int(res.n[i]),
                          batch_size=512, seed=6, indices=[idx[i]], num_classes=3)
    np.testing.assert_array_equal(res.counts[i:i + 1], fixed)


def test_discrete_noise_passes_its_delta_to_every_look():
    grid = 16
    xs = [round(x * grid) / grid for x in XS[:8]]
    inputs = wide(xs, width=64)  # 64 scalars: blocks of 2048 samples
    assert block_size(64) == 2048
    kw = dict(KW, max_n=9000)
    res = sample_adaptive(models.NearestCentre(), inputs, LABELS[:8], batch_size=1000,
                          noise="discrete", grid=grid, **kw)
    delta = DiscreteGaussianNoise(0.5, grid).delta(64)
    assert res.delta == delta > 0
    assert np.all((res.n % 2048 == 0) | (res.n == 9000))  # looks on block boundaries
    for i in range(8):
        level = float(res.levels[res.looks[i] - 1])
        if level > 0:
            expected = certify(res.counts[i:i + 1], [LABELS[i]], k=1, sigma=0.5, alpha=level,
                               method="ranked", delta=delta).radius[0]
            assert res.radius[i] == expected
        fixed = sample_counts(models.NearestCentre(), inputs[i:i + 1], sigma=0.5,
                              n=int(res.n[i]), batch_size=1000, seed=6, indices=[i],
                              noise="discrete", grid=grid, num_classes=3)
        np.testing.assert_array_equal(res.counts[i:i + 1], fixed)


def test_progress_bar_shows_the_looks_and_the_inputs_decided(capsys):
    res = sample_adaptive(models.NearestCentre(), wide(XS[:4]), LABELS[:4], batch_size=512,
                          progress=True, **KW)
    err = capsys.readouterr().err
    assert f"look {res.looks.max()}/{res.schedule.size}" in err and "decided 4/4" in err

    class Sink:
        total = 0

        def update(self, k):
            self.total += k

    sink = Sink()
    res = sample_adaptive(models.NearestCentre(), wide(XS[:4]), LABELS[:4], batch_size=512,
                          progress=sink, **KW)
    assert sink.total == res.n.sum()


class _Counting(models.NearestCentre):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


@pytest.mark.parametrize(("change", "message"), [
    (dict(labels=[0, 1]), "labels must hold one label per input (3), got shape (2,)"),
    (dict(labels=[0, 1, 5]), "labels must lie in 0..2"),
    (dict(k=0), "k must be an integer >= 1, got 0"),
    (dict(alpha=0.0), "alpha must be a probability in (0, 1), got 0.0"),
    (dict(radius=-1.0), "radius must be a finite number > 0, got -1.0"),
    (dict(max_n=0), "max_n must be an integer in 1..1,000,000,000,000, got 0"),
    (dict(max_n=100, first_n=128), "max_n must be at least the first look first_n = 128"),
    (dict(growth=0.5), "growth must be a finite number > 1, got 0.5"),
    (dict(futility=2.0), "futility must be None or a probability in (0, 1), got 2.0"),
    (dict(method="exact"), "method must be one of 'simuem', 'binocp' or 'ranked', got 'exact'"),
    (dict(batch_size=0), "batch_size must be a positive integer, got 0"),
    (dict(sigma=0.0), "sigma must be a finite number > 0, got 0.0"),
    (dict(noise="uniform"), "noise must be 'gaussian' or 'discrete', got 'uniform'"),
])
def test_invalid_arguments_raise_value_errors_before_any_forward_pass(change, message):
    model = _Counting()
    args = dict(KW, labels=[0, 1, 2], batch_size=64)
    args.pop("seed")
    args.update(change)
    labels = args.pop("labels")
    with pytest.raises(ValueError) as err:
        sample_adaptive(model, wide(XS[:3]), labels, seed=0, **args)
    assert message in str(err.value)
    if "lie in" not in message:  # the classes are known only once the model has run
        assert model.calls == 0


def test_adaptive_certifies_the_fixed_n_set_with_far_fewer_forward_passes():
    # 48 inputs spread over the three classes; fixed n = max_n for every input, certified
    # with the same ranked bounds at the full alpha, against the adaptive run's decisions
    xs = np.linspace(-2.2, 2.6, 48)
    labels = np.digitize(xs, [-0.5, 0.75])  # the label of the nearest centre
    inputs = wide(xs.tolist(), width=256)  # blocks of 512 samples
    kw = dict(k=1, sigma=0.5, alpha=0.001, radius=0.25, max_n=10_000, seed=11)
    model = models.BatchRecorder()
    res = sample_adaptive(model, inputs, labels, batch_size=1000, **kw)
    fixed_counts = sample_counts(models.NearestCentre(), inputs, sigma=0.5, n=10_000,
                                 batch_size=1000, seed=11)
    fixed = certify(fixed_counts, labels, k=1, sigma=0.5, alpha=0.001, method="ranked").radius >= 0.25
    assert sum(model.sizes) == res.n.sum()
    assert res.n.sum() * 5 < fixed_counts.sum()  # at least 5x fewer forward passes
    assert (res.certified != fixed).sum() <= 2, (res.certified, fixed)
    assert 15 <= fixed.sum() <= 45  # neither all nor none: the comparison means something
