"""Tests of sampler.discrete: exact discrete Gaussian offsets on a grid, and their delta.

Statistical tests use a significance level of 1e-6 with fixed seeds: they are
deterministic, and a correct sampler would fail them with probability about 1e-6. Every
G-test has a control that feeds it a wrong distribution and must reject it.
"""

from __future__ import annotations

import math
import os
import re
import sys

import mpmath
import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st
from scipy.stats import chi2_contingency, norm, power_divergence

torch = pytest.importorskip("torch")

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from sampler import sample_counts, two_stage_counts  # noqa: E402
from sampler import discrete  # noqa: E402
from sampler.discrete import (RANDOM_BITS, DiscreteGaussianNoise, offset_table)  # noqa: E402
from sampler.noise import GaussianNoise, make_noise  # noqa: E402
from sampler.streams import block_size  # noqa: E402
from topk_bounds.cli import main  # noqa: E402
from topk_bounds.io import parse_header, read_counts  # noqa: E402

ALPHA = 1e-6  # significance of every statistical test
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))]
ONE = 2**RANDOM_BITS


# --- probe models ---------------------------------------------------------------------------

class OffsetProbe(torch.nn.Module):
    """Predicts its own noise offset: class ``j + window`` for ``j = round(g x_c) - centre``.

    ``x_c`` is coordinate ``coord`` of the (flattened) input; offsets beyond the window are
    clipped into the two end classes. With ``floor=True`` it reports ``floor`` instead of
    ``round`` (a half-cell shift, for a control).
    """

    def __init__(self, grid: int, centre: int, window: int, coord: int = 0,
                 floor: bool = False) -> None:
        super().__init__()
        self.grid, self.centre, self.window, self.coord = grid, centre, window, coord
        self.floor = floor

    def offsets(self, x: torch.Tensor, coord: int) -> torch.Tensor:
        v = x.reshape(len(x), -1)[:, coord].to(torch.float64) * self.grid
        j = (torch.floor(v) if self.floor else torch.round(v)) - self.centre
        return (j + self.window).clamp(0, 2 * self.window).long()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = self.offsets(x, self.coord)
        return torch.nn.functional.one_hot(cls, 2 * self.window + 1).float()


class PairProbe(OffsetProbe):
    """Predicts the pair of (clipped) offsets of coordinates ``a`` and ``b``."""

    def __init__(self, grid: int, centre: int, window: int, a: int, b: int) -> None:
        super().__init__(grid, centre, window)
        self.a, self.b = a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = 2 * self.window + 1
        cls = self.offsets(x, self.a) * width + self.offsets(x, self.b)
        return torch.nn.functional.one_hot(cls, width * width).float()


class GridChecker(torch.nn.Module):
    """Records whether every value it sees is a grid point ``fl(v / g)`` (checked in numpy)."""

    def __init__(self, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.off_grid = 0
        self.seen = 0
        self.largest_index = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = x.detach().cpu().numpy()
        dtype = values.dtype.type
        index = np.round(values.astype(np.float64) * self.grid)
        grid_point = dtype(index) / dtype(self.grid)  # IEEE division in the input's dtype
        self.off_grid += int((grid_point != values).sum())
        self.seen += values.size
        self.largest_index = max(self.largest_index, int(np.abs(index).max()))
        return torch.zeros(len(x), 2)


def exact_offset_probabilities(sigma: float, grid: int, window: int) -> np.ndarray:
    """P(j) for |j| < window, and the two tails lumped into the end classes (scipy)."""
    s = sigma * grid
    j = np.arange(-window + 1, window)
    inner = norm.cdf((j + 0.5) / s) - norm.cdf((j - 0.5) / s)
    tail = norm.cdf((-window + 0.5) / s)  # P(j <= -window) = P(j >= window)
    probs = np.r_[tail, inner, tail]
    return probs / probs.sum()


def g_test_pvalue(counts: np.ndarray, probs: np.ndarray) -> float:
    keep = probs > 0
    expected = counts.sum() * probs[keep]
    return float(power_divergence(counts[keep], expected, lambda_="log-likelihood").pvalue)


def _grid_inputs(grid: int, indices, dtype=torch.float32) -> torch.Tensor:
    """Inputs ``fl(i / grid)``, one row, as the division gives them in ``dtype``."""
    i = torch.tensor(indices, dtype=dtype)
    return (i / torch.tensor(float(grid), dtype=dtype)).reshape(1, -1)


# --- the distribution -----------------------------------------------------------------------

@pytest.mark.parametrize("sigma, grid, window", [(0.5, 4, 6), (0.25, 255, 120)])
def test_offsets_pass_g_test_against_exact_probabilities(sigma, grid, window):
    # Three inputs whose probed coordinate is i0 / grid; the other coordinates vary.
    i0, n = 100, 100_000
    x = torch.cat([_grid_inputs(grid, [i0, k, 255 - k, 0]) for k in (0, 17, 200)])
    probe = OffsetProbe(grid, centre=i0, window=window)
    counts = sample_counts(probe, x, sigma=sigma, n=n, batch_size=10_000, seed=0,
                           noise="discrete", grid=grid)
    probs = exact_offset_probabilities(sigma, grid, window)
    assert counts.shape == (3, 2 * window + 1) and counts.sum(axis=1).tolist() == [n] * 3
    assert g_test_pvalue(counts.sum(axis=0), probs) > ALPHA


@pytest.mark.parametrize("sigma, grid, window", [(0.5, 4, 6), (0.25, 255, 120)])
def test_g_test_control_rejects_a_five_percent_larger_sigma(sigma, grid, window):
    x = _grid_inputs(grid, [100, 3])
    probe = OffsetProbe(grid, centre=100, window=window)
    counts = sample_counts(probe, x, sigma=1.05 * sigma, n=300_000, batch_size=10_000,
                           seed=0, noise="discrete", grid=grid)
    assert g_test_pvalue(counts[0], exact_offset_probabilities(sigma, grid, window)) < ALPHA


def test_g_test_control_rejects_offsets_that_floor_instead_of_round():
    # Float Gaussian noise read as floor(g (x + eps)) - i: a half-cell shift of P(j).
    sigma, grid, window = 0.5, 4, 6
    probe = OffsetProbe(grid, centre=100, window=window, floor=True)
    counts = sample_counts(probe, _grid_inputs(grid, [100]), sigma=sigma, n=300_000,
                           batch_size=10_000, seed=0)
    assert g_test_pvalue(counts[0], exact_offset_probabilities(sigma, grid, window)) < ALPHA


def test_offsets_of_two_coordinates_are_independent_with_a_control():
    sigma, grid, window = 0.5, 4, 3
    x = _grid_inputs(grid, [40, 40, 7])
    width = 2 * window + 1
    marginal = exact_offset_probabilities(sigma, grid, window)
    joint = np.outer(marginal, marginal).ravel()
    pair = sample_counts(PairProbe(grid, 40, window, a=0, b=1), x, sigma=sigma, n=200_000,
                         batch_size=10_000, seed=1, noise="discrete", grid=grid)
    assert g_test_pvalue(pair[0], joint) > ALPHA
    # Control: one coordinate paired with itself is perfectly dependent.
    same = sample_counts(PairProbe(grid, 40, window, a=0, b=0), x, sigma=sigma, n=20_000,
                         batch_size=10_000, seed=1, noise="discrete", grid=grid)
    assert same[0].reshape(width, width).trace() == 20_000
    assert g_test_pvalue(same[0], joint) < ALPHA


def test_fill_maps_each_random_word_through_the_alias_table(monkeypatch):
    # Bit for bit: the same generator seed gives the same 63-bit words; the offset of each
    # is recomputed here from the tables (column = low bits, own offset if u <= cut). A
    # small chunk size makes the block span several chunks.
    noise = DiscreteGaussianNoise(0.5, grid=255)
    table = noise.table
    x = _grid_inputs(255, [0, 1, 128, 254, 255, -3, 1000])[0]
    d, m = x.numel(), 10
    monkeypatch.setattr(discrete, "_CHUNK", 3 * d + 1)  # 3 rows per chunk: 4 chunks
    out = torch.empty(m, d)
    noise.fill_(out, x, torch.Generator().manual_seed(123))
    u = torch.empty(m * d, dtype=torch.int64).random_(generator=torch.Generator().manual_seed(123))
    u = u.numpy().astype(object)  # Python ints
    column = u & ((1 << table.column_bits) - 1)
    cut = table.keep_below[column.astype(np.int64)].astype(object)
    index = np.where(u <= cut, column, table.alias[column.astype(np.int64)]).astype(np.int64)
    i = np.round(x.numpy().astype(np.float64) * 255).astype(np.int64)
    expected = np.float32(index.reshape(m, d) - table.J + i) / np.float32(255)
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("sigma, grid", [(0.25, 255), (0.5, 4), (1e-3, 1)])
def test_word_map_switches_from_own_to_alias_exactly_at_each_columns_threshold(sigma, grid):
    # With realized_weights (which counts, per column, the words v << m | c with v below
    # the threshold as the column's own), this proves the drawn distribution exactly: the
    # map is monotone in v, so checking both sides of every column's switch suffices.
    table = offset_table(sigma, grid)
    m = table.column_bits
    capacity = 1 << (RANDOM_BITS - m)
    words, expected = [], []
    for c in range(1 << m):
        own = (int(table.keep_below[c]) + 1) >> m
        for v in {0, own - 1, own, capacity - 1}:
            if 0 <= v < capacity:
                words.append((v << m) | c)
                expected.append(c if v < own else int(table.alias[c]))
    u = torch.tensor(words, dtype=torch.int64)
    work = [torch.empty_like(u), torch.empty_like(u), torch.empty(len(u), dtype=torch.bool)]
    index = discrete._offset_index(u, torch.tensor(table.keep_below),
                                   torch.tensor(table.alias), (1 << m) - 1, *work)
    assert index.tolist() == expected


@pytest.mark.parametrize("device", DEVICES)
def test_random_words_are_uniform_on_63_bits(device):
    # The generator assumption in its testable form: every one of the 63 bits is set about
    # half the time (bit 62 included: the words are not 62-bit), none is negative.
    generator = torch.Generator(device=device).manual_seed(5)
    u = torch.empty(1_000_000, dtype=torch.int64, device=device).random_(generator=generator)
    u = u.cpu()
    assert int(u.min()) >= 0
    bits = ((u.unsqueeze(1) >> torch.arange(63)) & 1).double().mean(dim=0)
    sd = 0.5 / math.sqrt(len(u))
    assert float((bits - 0.5).abs().max()) < 6 * sd, bits  # 6 sd: p about 1e-7 per bit


# --- the tables and delta -------------------------------------------------------------------

@pytest.mark.parametrize("sigma, grid", [(0.25, 255), (0.5, 4), (1e-3, 1), (0.3, 7)])
def test_alias_table_realizes_exactly_the_cdf_threshold_weights(sigma, grid):
    table = offset_table(sigma, grid)
    weights = list(table.weights)
    assert sum(weights) == ONE and min(weights) >= 0 and weights == weights[::-1]
    thresholds = [0] + table.cdf_thresholds().tolist() + [ONE]
    assert all(a <= b for a, b in zip(thresholds, thresholds[1:]))
    assert [b - a for a, b in zip(thresholds, thresholds[1:])] == weights
    assert table.realized_weights() == weights  # exact integer recount of the alias table


def _independent_table(sigma: float, grid: int, dps: int = 90):
    """Thresholds, J and the per-coordinate TV recomputed with mpmath.ncdf at ``dps``."""
    with mpmath.workdps(dps):
        s = mpmath.mpf(sigma) * grid
        tails, exact = [], []
        k = 0
        while True:
            q = mpmath.ncdf(-(k + mpmath.mpf(1) / 2) / s)
            exact.append(q)
            tails.append(int(mpmath.floor(q * ONE + mpmath.mpf(1) / 2)))
            if tails[-1] == 0:
                break
            k += 1
        J = k
        drawn = {0: mpmath.mpf(ONE - 2 * tails[0]) / ONE}
        p = {0: 1 - 2 * exact[0]}
        for j in range(1, J + 1):
            drawn[j] = mpmath.mpf(tails[j - 1] - tails[j]) / ONE
            p[j] = exact[j - 1] - exact[j]
        # TV = 1/2 sum over all j of |drawn - exact|; j and -j alike; beyond J only exact.
        tv = (abs(drawn[0] - p[0]) + 2 * sum(abs(drawn[j] - p[j]) for j in range(1, J + 1))
              + 2 * exact[J]) / 2
        return tails, J, tv


@pytest.mark.parametrize("sigma, grid", [(0.25, 255), (0.5, 4), (0.3, 7), (1.0, 255)])
def test_delta_per_coordinate_matches_an_independent_mpmath_computation(sigma, grid):
    table = offset_table(sigma, grid)
    tails, J, tv = _independent_table(sigma, grid)
    assert table.J == J and list(table.tails) == tails
    # Rounded up, with a margin of about 1e-72: at least the TV, and above it by at most
    # the final rounding to a double (relative 2**-52).
    assert mpmath.mpf(table.delta_per_coordinate) >= tv
    assert table.delta_per_coordinate <= float(tv) * (1 + 2.0**-50)
    assert table.delta_per_coordinate <= (J + 1) * 2.0**-RANDOM_BITS  # docs/soundness.md


def test_tiny_sigma_has_a_single_offset_and_a_positive_delta():
    table = offset_table(1e-3, 1)
    assert table.J == 0 and table.weights == (ONE,)
    assert 0 < table.delta_per_coordinate < 1e-70  # 2 Phi(-500) plus the mpmath margin


@pytest.mark.parametrize("sigma", [0.12, 0.25, 0.5, 1.0])
def test_delta_of_imagenet_sized_inputs_is_below_1e_minus_9(sigma):
    noise = DiscreteGaussianNoise(sigma, grid=255)
    n_coords = 3 * 224 * 224
    delta = noise.delta(n_coords)
    assert delta < 1e-9
    # delta is the smallest double >= n_coords * delta_per_coordinate (exact product).
    with mpmath.workprec(200):
        product = mpmath.mpf(noise.table.delta_per_coordinate) * n_coords
        assert mpmath.mpf(delta) >= product
        assert mpmath.mpf(math.nextafter(delta, 0.0)) < product


def test_header_fields_record_noise_grid_and_delta():
    assert GaussianNoise(0.5).header_fields(784) == {"noise": "gaussian"}
    noise = DiscreteGaussianNoise(0.5, grid=255)
    fields = noise.header_fields(784)
    assert fields == {"noise": "discrete", "grid": 255, "delta": repr(noise.delta(784))}
    assert float(fields["delta"]) == noise.delta(784)  # the repr round-trips
    with pytest.raises(ValueError, match="n_coords must be a positive integer, got 0"):
        noise.delta(0)


# --- what the model sees --------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("grid", [255, 7, 1000, 1])
def test_model_sees_exactly_the_float_of_i_plus_j_over_grid(dtype, grid, device):
    noise = DiscreteGaussianNoise(2.0 / grid + 0.3, grid=grid)
    indices = list(range(-300, 300, 7)) + [0, grid, 2 * grid, 12345]
    x = _grid_inputs(grid, indices, dtype)[0].to(device)
    noise.check_inputs(x)
    out = torch.empty(500, x.numel(), dtype=dtype, device=device)
    noise.fill_(out, x, torch.Generator(device=device).manual_seed(0))
    np_dtype = {torch.float32: np.float32, torch.float64: np.float64}[dtype]
    v = out.cpu().numpy()
    i = np.array(indices, dtype=np.int64)
    j = np.round(v.astype(np.float64) * grid).astype(np.int64) - i
    assert np.abs(j).max() <= noise.table.J and len(np.unique(j)) > 3
    np.testing.assert_array_equal(v, np_dtype(i + j) / np_dtype(grid))  # numpy: IEEE division


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_model_that_checks_its_input_sees_only_grid_points(dtype):
    x = torch.cat([_grid_inputs(255, [0, 255, 128, 7] * 16, dtype) for _ in range(3)])
    checker = GridChecker(255)
    sample_counts(checker, x, sigma=0.5, n=1000, batch_size=256, seed=0, noise="discrete")
    assert checker.seen == 3 * 1000 * 64 and checker.off_grid == 0
    assert checker.largest_index > 300  # the noise did move the inputs
    # Control: float Gaussian noise puts (almost) every value off the grid.
    control = GridChecker(255)
    sample_counts(control, x, sigma=0.5, n=1000, batch_size=256, seed=0)
    assert control.off_grid > 0.99 * control.seen


# --- the grid check -------------------------------------------------------------------------

@pytest.mark.parametrize("value, message", [
    (0.3, r"inputs\[1, 2\] = 0.30000001192092896 is not on the grid i / 255 \(the nearest "
          r"grid point is 77 / 255 = 0.3019607"),
    (float("nan"), r"inputs\[1, 2\] = nan is not on the grid i / 255"),
    (float("inf"), r"inputs\[1, 2\] = inf is not on the grid i / 255"),
    (1e5, r"inputs\[1, 2\] = 100000.0 is outside the range of discrete noise on the grid "
          r"i / 255: \|i\| must be at most"),
    (np.nextafter(np.float32(128 / 255), np.float32(1)),
     r"inputs\[1, 2\] = 0.50196087.* is not on the grid i / 255 \(the nearest grid point is "
     r"128 / 255"),
])
def test_inputs_off_the_grid_raise_value_error_naming_the_first_element(value, message):
    x = torch.full((2, 4), 3 / 255)
    x[1, 2] = float(value)
    x[1, 3] = 0.1  # a later offender is not the one named
    with pytest.raises(ValueError, match=message):
        sample_counts(OffsetProbe(255, 0, 2), x, sigma=0.25, n=10, batch_size=10, seed=0,
                      noise="discrete")


def test_the_grid_check_names_the_first_offender_across_chunks(monkeypatch):
    monkeypatch.setattr(discrete, "_CHUNK", 3)
    x = torch.full((3, 4), 5 / 255)
    x[2, 1] = 0.25  # flat position 9, in the fourth chunk of three elements
    x[2, 3] = 0.5
    with pytest.raises(ValueError, match=r"inputs\[2, 1\] = 0.25 is not on the grid"):
        DiscreteGaussianNoise(0.25).check_inputs(x)
    DiscreteGaussianNoise(0.25).check_inputs(x[:2])


@settings(max_examples=200)
@given(i=st.integers(-2_000_000, 2_000_000), grid=st.sampled_from([1, 3, 7, 255, 1000, 65535]),
       double=st.booleans())
@example(i=0, grid=255, double=False)
@example(i=255, grid=255, double=False)
@example(i=-2_000_000, grid=1, double=False)
def test_grid_points_pass_the_check_and_their_float_neighbours_do_not(i, grid, double):
    dtype = torch.float64 if double else torch.float32
    noise = DiscreteGaussianNoise(0.5 / grid, grid=grid)  # J = 4: all of the range is valid
    x = _grid_inputs(grid, [i], dtype)
    noise.check_inputs(x)
    for direction in (-math.inf, math.inf):
        neighbour = torch.nextafter(x, torch.full_like(x, direction))
        with pytest.raises(ValueError, match=r"inputs\[0, 0\] = .* is not on the grid"):
            noise.check_inputs(neighbour)


def test_discrete_noise_needs_float32_or_float64_inputs():
    with pytest.raises(ValueError, match="inputs must be float32 or float64 for discrete "
                                         "noise, got dtype torch.float16"):
        sample_counts(OffsetProbe(255, 0, 2), torch.zeros(1, 3, dtype=torch.float16),
                      sigma=0.25, n=10, batch_size=10, noise="discrete")


@pytest.mark.parametrize("kwargs, message", [
    (dict(noise="uniform"), "noise must be 'gaussian' or 'discrete', got 'uniform'"),
    (dict(grid=255), "grid is only used with noise='discrete', got grid=255 with "
                     "noise='gaussian'"),
    (dict(noise="discrete", grid=0), r"grid must be an integer in 1..16777216, got 0"),
    (dict(noise="discrete", grid=2.5), r"grid must be an integer in 1..16777216, got 2.5"),
    (dict(noise="discrete", grid=True), r"grid must be an integer in 1..16777216, got True"),
    (dict(noise="discrete", grid=10**6, sigma=0.5), r"grid \* sigma must be at most 40000"),
])
def test_invalid_noise_options_raise_value_error_naming_the_argument(kwargs, message):
    call = dict(sigma=0.25, n=10, batch_size=10, seed=0)
    call.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sample_counts(OffsetProbe(255, 0, 2), torch.zeros(1, 3), **call)


def test_make_noise_defaults_to_the_8_bit_grid():
    noise = make_noise("discrete", 0.25)
    assert isinstance(noise, DiscreteGaussianNoise) and noise.grid == 255


# --- reproducibility ------------------------------------------------------------------------

def _probe_inputs() -> torch.Tensor:
    return torch.cat([_grid_inputs(255, [k, 10, 250]) for k in (100, 0, 37, 255, 128)])


def test_discrete_rows_do_not_depend_on_batch_size():
    xs = _probe_inputs()
    n = 2 * block_size(xs[0].numel()) + 44  # a short last block
    probe = OffsetProbe(255, 100, 60)
    counts = [sample_counts(probe, xs, sigma=0.25, n=n, batch_size=b, seed=3,
                            noise="discrete") for b in (7, 512)]
    np.testing.assert_array_equal(counts[0], counts[1])


def test_discrete_rows_depend_only_on_seed_and_global_index():
    probe, xs = OffsetProbe(255, 100, 60), _probe_inputs()
    whole = sample_counts(probe, xs, sigma=0.25, n=500, batch_size=300, seed=5,
                          noise="discrete")
    for i in range(len(xs)):
        row = sample_counts(probe, xs[i:i + 1], sigma=0.25, n=500, batch_size=300, seed=5,
                            indices=[i], noise="discrete")
        np.testing.assert_array_equal(row[0], whole[i])
    other = sample_counts(probe, xs, sigma=0.25, n=500, batch_size=300, seed=6,
                          noise="discrete")
    assert not np.array_equal(whole, other)


def test_two_stage_discrete_estimation_equals_sample_counts_and_stages_are_independent():
    probe, xs = OffsetProbe(255, 100, 60), _probe_inputs()[:1]
    result = two_stage_counts(probe, xs, sigma=0.25, n0=2000, n=2000, batch_size=256,
                              seed=4, noise="discrete")
    direct = sample_counts(probe, xs, sigma=0.25, n=2000, batch_size=256, seed=4,
                           noise="discrete")
    np.testing.assert_array_equal(result.estimation, direct)
    assert not np.array_equal(result.selection, result.estimation)
    both = np.stack([result.selection[0], result.estimation[0]])
    assert chi2_contingency(both[:, both.sum(axis=0) > 0]).pvalue > ALPHA


# --- the command line -----------------------------------------------------------------------

@pytest.fixture
def grid_workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(HERE)
    inputs = torch.tensor([[0, 64, 255], [128, 128, 3], [255, 0, 17], [1, 2, 3]]) / 255.0
    torch.save({"inputs": inputs, "labels": torch.tensor([0, 1, 2, 1])}, tmp_path / "grid.pt")
    off = inputs.clone()
    off[2, 1] = 0.5
    torch.save({"inputs": off, "labels": torch.tensor([0, 1, 2, 1])}, tmp_path / "off.pt")
    return tmp_path


def _sample_args(out="counts.txt", inputs="grid.pt", extra=("--noise", "discrete"),
                 sigma="0.25"):
    return ["sample", "--model", "_sampler_models:nearest_centre", "--inputs", inputs,
            "--sigma", sigma, "--n", "300", "--batch", "128", "--seed", "0", "--out", out,
            "--no-progress", *extra]


def _header_fields(path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return parse_header(fh.readline().strip())


def test_cli_discrete_header_records_noise_grid_and_delta_and_rows_match_the_api(
        grid_workdir):
    assert main(_sample_args(extra=["--noise", "discrete", "--grid", "255"])) == 0
    header = _header_fields("counts.txt")
    expected = DiscreteGaussianNoise(0.25, grid=255).header_fields(3)
    assert {k: header[k] for k in expected} == {k: str(v) for k, v in expected.items()}
    data = read_counts("counts.txt")
    inputs = torch.load("grid.pt")["inputs"]
    from _sampler_models import NearestCentre

    np.testing.assert_array_equal(data.counts, sample_counts(
        NearestCentre(), inputs, sigma=0.25, n=300, batch_size=1000, seed=0,
        noise="discrete"))
    assert main(_sample_args("gauss.txt", extra=())) == 0
    gauss = _header_fields("gauss.txt")
    assert gauss["noise"] == "gaussian" and "delta" not in gauss and "grid" not in gauss


def test_cli_discrete_run_resumed_after_truncation_ends_with_the_identical_file(grid_workdir):
    assert main(_sample_args("full.txt")) == 0
    full = (grid_workdir / "full.txt").read_bytes()
    first_row_end = full.index(b"\n", full.index(b"\n") + 1) + 1
    for cut in (first_row_end, first_row_end + 3, len(full) - 2):
        (grid_workdir / "counts.txt").write_bytes(full[:cut])
        assert main(_sample_args()) == 0
        assert (grid_workdir / "counts.txt").read_bytes() == full, cut
    # A discrete file is not resumed by a Gaussian run (the header differs).
    (grid_workdir / "counts.txt").write_bytes(full[:first_row_end])
    assert main(_sample_args(extra=())) == 2


@pytest.mark.parametrize("extra, inputs, message", [
    (("--noise", "discrete"), "off.pt",
     r"--inputs: inputs\[2, 1\] = 0.5 is not on the grid i / 255"),
    (("--grid", "255"), "grid.pt", "--grid 255 is only used with --noise discrete"),
    (("--noise", "discrete", "--grid", "1000000"), "grid.pt",
     r"--grid: grid \* sigma must be at most 40000"),
])
def test_cli_noise_errors_are_one_line_with_exit_status_2(grid_workdir, capsys, extra,
                                                         inputs, message):
    assert main(_sample_args(inputs=inputs, extra=extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("topk-bounds sample: error: ")
    assert re.search(message, err), err
    assert not (grid_workdir / "counts.txt").exists()


def test_cli_grid_must_be_a_positive_integer(grid_workdir, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(_sample_args(extra=["--noise", "discrete", "--grid", "0"]))
    assert exit_.value.code == 2
    assert "--grid must be >= 1, got '0'" in capsys.readouterr().err
