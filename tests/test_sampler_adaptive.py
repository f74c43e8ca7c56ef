"""sample_adaptive (sampler.adaptive) and ``topk-bounds sample --target-radius``.

Its samples are a prefix of each input's fixed-n stream (the counts of an input that
stopped after n samples are sample_counts(..., n=n)); they do not depend on the batch size
or the number of ranks; forward batches pack many undecided inputs; discrete noise passes
its delta to every look; the block offset of Request.count that all of this rests on; and
the command: its file, resuming, the lock, the refusals of certify, its errors.
"""

from __future__ import annotations

import fcntl
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
from _children import start_cli, torchrun, truncation_points, wait_for_lines  # noqa: E402

from sampler import sample_adaptive, sample_counts  # noqa: E402
from sampler.core import prepare  # noqa: E402
from sampler.discrete import DiscreteGaussianNoise  # noqa: E402
from sampler.streams import ESTIMATION, block_size, input_words, schedule  # noqa: E402
from topk_bounds import certify  # noqa: E402
from topk_bounds.adaptive import look_schedule  # noqa: E402
from topk_bounds.cli import main  # noqa: E402
from topk_bounds.io import parse_header  # noqa: E402
from topk_bounds.report.adaptive import read_adaptive_file  # noqa: E402

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
    # batch 7 on the inputs that stop by the look at 1,024 samples (the others would take
    # thousands of tiny passes), with their global indices: each row depends only on its
    # own stream, so they must equal the rows of the run at batch 512 of all inputs
    rows = np.flatnonzero(result.n <= 1024)
    assert rows.size >= 10 and len(set(result.looks[rows].tolist())) >= 3
    small = sample_adaptive(models.NearestCentre(), wide([XS[i] for i in rows]),
                            [LABELS[i] for i in rows], batch_size=7, indices=rows.tolist(), **KW)
    for name in ("certified", "n", "counts", "radius", "looks", "decision"):
        np.testing.assert_array_equal(getattr(small, name), getattr(result, name)[rows],
                                      err_msg=name)


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
    # 24 inputs spread over the three classes; fixed n = max_n for every input, certified
    # with the same ranked bounds at the full alpha, against the adaptive run's decisions
    # (seeded: 18 and 18, the same inputs, 8.7x fewer samples when this was written)
    xs = np.linspace(-2.2, 2.6, 24)
    labels = np.digitize(xs, [-0.5, 0.75])  # the label of the nearest centre
    inputs = wide(xs.tolist(), width=256)  # blocks of 512 samples
    kw = dict(k=1, sigma=0.5, alpha=0.001, radius=0.25, max_n=5000, seed=11)
    model = models.BatchRecorder()
    res = sample_adaptive(model, inputs, labels, batch_size=1000, **kw)
    fixed_counts = sample_counts(models.NearestCentre(), inputs, sigma=0.5, n=5000,
                                 batch_size=1000, seed=11)
    fixed = certify(fixed_counts, labels, k=1, sigma=0.5, alpha=0.001, method="ranked").radius >= 0.25
    assert sum(model.sizes) == res.n.sum()
    assert res.n.sum() * 5 < fixed_counts.sum()  # at least 5x fewer forward passes
    assert (res.certified != fixed).sum() <= 1, (res.certified, fixed)
    assert 6 <= fixed.sum() <= 20  # neither all nor none: the comparison means something


# --------------------------------------------------------------------------------------
# topk-bounds sample --target-radius
# --------------------------------------------------------------------------------------
#: 1-D inputs for the CLI (blocks of 4,096 samples), and their labels.
CLI_XS = (-2.0, -0.8, 0.0, 0.5, 1.04, 2.0, -0.6, 1.2, 0.3)
CLI_LABELS = (0, 0, 1, 1, 2, 2, 0, 2, 1)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(HERE)
    torch.save({"inputs": torch.tensor(CLI_XS).reshape(-1, 1),
                "labels": torch.tensor(CLI_LABELS)}, tmp_path / "data.pt")
    return tmp_path


def _args(out="adaptive.tsv", model="_sampler_models:nearest_centre", batch=512, seed=0,
          extra=("--no-progress",), **options):
    opts = dict(target_radius=0.25, max_n=20_000, k=1, alpha=0.001)
    opts.update(options)
    args = ["sample", "--model", model, "--inputs", "data.pt", "--sigma", "0.5",
            "--batch", str(batch), "--seed", str(seed), "--out", out, *extra]
    for key, value in opts.items():
        if value is not None:
            args += ["--" + key.replace("_", "-"), str(value)]
    return args


def test_cli_rows_are_the_decisions_of_sample_adaptive_with_global_indices(workdir, capsys):
    assert main(_args(extra=())) == 0
    found = read_adaptive_file("adaptive.tsv")
    res = sample_adaptive(models.NearestCentre(), torch.tensor(CLI_XS).reshape(-1, 1),
                          CLI_LABELS, k=1, sigma=0.5, alpha=0.001, radius=0.25, max_n=20_000,
                          batch_size=1000, seed=0)
    for name in ("certified", "decision", "radius", "n", "looks", "counts"):
        np.testing.assert_array_equal(getattr(found, name), getattr(res, name), err_msg=name)
    assert found.labels.tolist() == list(CLI_LABELS)
    assert found.schedule.tolist() == res.schedule.tolist() == [4096, 8192, 12288, 20000]
    err = capsys.readouterr().err
    assert "input/s" in err and f"wrote adaptive.tsv: {len(CLI_XS)} rows" in err


def test_cli_header_says_adaptive_and_records_the_decision_rule(workdir):
    assert main(_args()) == 0
    meta = parse_header((workdir / "adaptive.tsv").read_text().splitlines()[0])
    assert meta["kind"] == "sample" and meta["version"] == "2" and meta["mode"] == "adaptive"
    expected = dict(target_radius="0.25", k="1", alpha="0.001", method="ranked",
                    max_n="20000", first_n="128", growth="1.5", final_share="0.5",
                    futility="0.05", block="4096", looks="4096,8192,12288,20000",
                    sigma="0.5", seed="0", classes="3", rows=str(len(CLI_XS)),
                    noise="gaussian", inputs="data.pt")
    assert {key: meta.get(key) for key in expected} == expected
    assert "n" not in meta and "stage" not in meta


def test_cli_file_does_not_depend_on_the_batch_size(workdir):
    # inputs of 1024 scalars (blocks of 128 samples), so that batch 7 stays quick
    torch.save({"inputs": wide(XS[:8]), "labels": torch.tensor(LABELS[:8])},
               workdir / "data.pt")
    assert main(_args("a.tsv", batch=7, max_n=3000)) == 0
    assert main(_args("b.tsv", batch=512, max_n=3000)) == 0
    assert (workdir / "a.tsv").read_bytes() == (workdir / "b.tsv").read_bytes()
    assert len(set(read_adaptive_file("a.tsv").looks.tolist())) >= 3


def test_cli_discrete_noise_records_delta_and_widens_every_look(workdir):
    grid = 16
    xs = [round(x * grid) / grid for x in CLI_XS]
    torch.save({"inputs": torch.tensor(xs).reshape(-1, 1), "labels": torch.tensor(CLI_LABELS)},
               workdir / "data.pt")
    assert main(_args(extra=("--no-progress", "--noise", "discrete", "--grid", str(grid)))) == 0
    found = read_adaptive_file("adaptive.tsv")
    delta = DiscreteGaussianNoise(0.5, grid).delta(1)
    assert found.meta["noise"] == "discrete" and float(found.meta["delta"]) == delta
    res = sample_adaptive(models.NearestCentre(), torch.tensor(xs).reshape(-1, 1), CLI_LABELS,
                          k=1, sigma=0.5, alpha=0.001, radius=0.25, max_n=20_000,
                          batch_size=512, seed=0, noise="discrete", grid=grid)
    assert res.delta == delta
    np.testing.assert_array_equal(found.radius, res.radius)
    np.testing.assert_array_equal(found.counts, res.counts)


def test_cli_resumed_after_any_truncation_ends_with_the_identical_file(workdir):
    torch.save({"inputs": wide(XS[:6]), "labels": torch.tensor(LABELS[:6])},
               workdir / "data.pt")
    assert main(_args("full.tsv", max_n=3000)) == 0
    full = (workdir / "full.tsv").read_bytes()
    for cut in truncation_points(full):
        (workdir / "adaptive.tsv").write_bytes(full[:cut])
        assert main(_args(max_n=3000)) == 0
        assert (workdir / "adaptive.tsv").read_bytes() == full, cut


def test_cli_killed_by_sigkill_and_restarted_ends_with_the_identical_file(workdir):
    # 10 ms per forward pass, 16 passes per look of one input: about 0.2 s per input
    slow = dict(model="_sampler_models:slow_nearest_centre", batch=256, max_n=8192)
    proc = start_cli(_args(**slow), workdir)
    out = workdir / "adaptive.tsv"
    wait_for_lines(proc, out, 4)  # preamble and 2 rows
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    rows_before = out.read_bytes().count(b"\n") - 2
    assert 2 <= rows_before < len(CLI_XS), "the run was not killed midway"
    assert main(_args(**slow)) == 0
    assert main(_args("reference.tsv", **slow)) == 0
    assert out.read_bytes() == (workdir / "reference.tsv").read_bytes()


def test_cli_refuses_while_another_process_holds_the_lock(workdir, capsys):
    fd = os.open(workdir / "adaptive.tsv", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(_args()) == 2
    finally:
        os.close(fd)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is being written by another running" in err


def test_cli_refuses_to_continue_a_fixed_n_file_or_another_target(workdir, capsys):
    assert main(_args(target_radius=0.5)) == 0
    before = (workdir / "adaptive.tsv").read_bytes()
    assert main(_args()) == 2
    err = capsys.readouterr().err
    assert "was written by a different run (it has target_radius=0.5, this run " \
           "target_radius=0.25)" in err
    fixed = ["sample", "--model", "_sampler_models:nearest_centre", "--inputs", "data.pt",
             "--sigma", "0.5", "--n", "300", "--batch", "64", "--seed", "0", "--out",
             "fixed.txt", "--no-progress"]
    assert main(fixed) == 0
    assert main(_args("fixed.txt")) == 2
    assert "fixed.txt was written by a different run (it has mode=(none), this run " \
           "mode=adaptive" in capsys.readouterr().err
    assert (workdir / "adaptive.tsv").read_bytes() == before


def test_an_adaptive_file_holding_only_another_runs_header_and_columns_starts_afresh(
        workdir, capsys):
    assert main(_args(target_radius=0.5)) == 0
    lines = (workdir / "adaptive.tsv").read_bytes().split(b"\n")
    (workdir / "adaptive.tsv").write_bytes(b"\n".join(lines[:2]) + b"\n")  # no rows
    assert main(_args("fresh.tsv")) == 0
    capsys.readouterr()
    assert main(_args()) == 0
    assert "holds only the header of an earlier run, no rows; starting it afresh" in \
        capsys.readouterr().err
    assert (workdir / "adaptive.tsv").read_bytes() == (workdir / "fresh.tsv").read_bytes()


def test_certify_and_report_counts_refuse_the_adaptive_file_with_one_line(workdir, capsys):
    assert main(_args()) == 0
    capsys.readouterr()
    assert main(["certify", "adaptive.tsv", "--k", "1", "--sigma", "0.5", "--alpha", "0.001"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "adaptive.tsv was sampled adaptively (header mode=adaptive): fixed-n " \
           "certificates are void" in captured.err
    assert main(["report", "--counts", "adaptive.tsv", "--sigma", "0.5", "--alpha", "0.001",
                 "--out", "rep"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sampled adaptively" in err
    assert "topk-bounds report adaptive.tsv --out DIR" in err
    assert not (workdir / "rep").exists()


def test_report_of_the_cli_file_shows_its_accuracy_and_samples(workdir, capsys):
    assert main(_args()) == 0
    found = read_adaptive_file("adaptive.tsv")
    capsys.readouterr()
    assert main(["report", "adaptive.tsv", "--out", "rep"]) == 0
    out = capsys.readouterr().out
    cert = int(found.certified.sum())
    assert f"accuracy at radius r = 0.25: **{cert / len(CLI_XS):.3f}** ({cert} of " \
           f"{len(CLI_XS)} inputs)" in out
    assert sorted(p.name for p in (workdir / "rep").iterdir()) == [
        "adaptive.md", "adaptive_samples.pdf", "adaptive_samples.png"]


@pytest.mark.parametrize(("options", "message"), [
    (dict(n=300), "--n and --target-radius exclude each other"),
    (dict(n0=20), "--n0 is not used with --target-radius"),
    (dict(k=None), "--target-radius needs --k"),
    (dict(max_n=None), "--target-radius needs --max-n"),
    (dict(alpha=None), "--target-radius needs --alpha"),
    (dict(target_radius=None), "--max-n is only used with --target-radius"),
    (dict(target_radius=None, max_n=None, k=None, alpha=None, futility=0.1),
     "--futility is only used with --target-radius"),
    (dict(target_radius=None, max_n=None, k=None, alpha=None),
     "give --n (samples per input) or --target-radius"),
    (dict(first_n=30_000), "--first-n 30000 is larger than --max-n 20000"),
    (dict(max_n=10**13), "--max-n must be at most 1e+12"),
    (dict(target_radius=0), "--target-radius must be a finite number > 0, got '0'"),
    (dict(alpha=1.5), "--alpha must lie in (0, 1), got '1.5'"),
    (dict(k=0), "--k must be >= 1, got '0'"),
    (dict(growth=1), "--growth must be a finite number > 1, got '1'"),
    (dict(final_share=2), "--final-share must lie in (0, 1], got '2'"),
    (dict(futility="often"), "--futility must be a number, got 'often'"),
    (dict(method="exact"), "argument --method: invalid choice: 'exact'"),
])
def test_cli_adaptive_errors_are_one_line_with_exit_status_2(workdir, capsys, options, message):
    try:
        status = main(_args(**options))
    except SystemExit as exc:  # argparse rejects bad values itself
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("topk-bounds sample: error: "), err
    assert message in err, err
    assert not (workdir / "adaptive.tsv").exists()


def test_cli_futility_none_turns_the_stop_off(workdir):
    assert main(_args("off.tsv", futility="none", max_n=9000)) == 0
    found = read_adaptive_file("off.tsv")
    assert found.meta["futility"] == "none"
    assert "futile" not in found.decision.tolist()
    assert np.all(found.n[~found.certified] == 9000)


# --------------------------------------------------------------------------------------
# torch.distributed: 2 CPU processes, gloo backend
# --------------------------------------------------------------------------------------
_WORKER = """
import sys
import numpy as np
import torch
import torch.distributed as dist
import _sampler_models as models
from sampler import sample_adaptive
from test_sampler_adaptive import KW, LABELS, XS, _args, wide
from topk_bounds.cli import main

out = sys.argv[1]
dist.init_process_group("gloo")
rank = dist.get_rank()
res = sample_adaptive(models.NearestCentre(), wide(XS), LABELS, batch_size=512, timeout=60, **KW)
# one input whose first look is one block: rank 1 draws nothing there
one = sample_adaptive(models.NearestCentre(), wide(XS[:1]), LABELS[:1], batch_size=512, **KW)
np.savez(f"{out}/rank{rank}.npz", n=res.n, counts=res.counts, radius=res.radius,
         decision=res.decision, one=one.counts)
status = main(_args("dist.tsv", max_n=3000))  # in the working directory, beside data.pt
dist.destroy_process_group()
sys.exit(status)
"""


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    if not torch.distributed.is_available():  # pragma: no cover - some builds lack it
        pytest.skip("torch.distributed is not available in this torch build")
    work = tmp_path_factory.mktemp("dist")
    torch.save({"inputs": wide(XS[:6]), "labels": torch.tensor(LABELS[:6])}, work / "data.pt")
    (work / "worker.py").write_text(_WORKER)
    torchrun([str(work / "worker.py"), str(work)], cwd=work, timeout=180)
    return work, [np.load(work / f"rank{r}.npz") for r in range(2)]


def test_two_ranks_decide_the_same_and_equal_a_single_process(ranks, result):
    _, (rank0, rank1) = ranks
    for key in ("n", "counts", "radius", "decision", "one"):
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
    for key in ("n", "counts", "radius", "decision"):
        np.testing.assert_array_equal(rank0[key], getattr(result, key), err_msg=key)
    np.testing.assert_array_equal(rank0["one"], result.counts[:1])


def test_cli_under_torchrun_writes_the_single_process_file(ranks, monkeypatch):
    work, _ = ranks
    monkeypatch.syspath_prepend(HERE)
    monkeypatch.chdir(work)
    assert main(_args("single.tsv", max_n=3000)) == 0
    assert (work / "dist.tsv").read_bytes() == (work / "single.tsv").read_bytes()
