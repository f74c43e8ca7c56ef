"""Small torch models with known smoothed class probabilities, for the sampler tests.

The CLI tests load them as ``_sampler_models:nearest_centre`` (this directory on sys.path).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.stats import norm

torch = pytest.importorskip("torch")

#: Centres of the default 1-D nearest-centre classifier (classes 0, 1, 2).
CENTRES = (-1.0, 0.0, 1.5)


class NearestCentre(torch.nn.Module):
    """1-D classifier: the label of the nearest centre; logits ``-(x - c)**2``.

    Inputs have shape ``(m, d)``; only the first coordinate is used, so ``d`` can be made
    large to make the noise heavy without changing the probabilities.
    """

    def __init__(self, centres=CENTRES) -> None:
        super().__init__()
        self.register_buffer("centres", torch.tensor(centres, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -(x[:, :1] - self.centres) ** 2


class SlowNearestCentre(NearestCentre):
    """The same classifier, sleeping ``delay`` seconds per forward pass (for kill tests)."""

    def __init__(self, delay: float = 0.01) -> None:
        super().__init__()
        self.delay = delay

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay)
        return super().forward(x)


class ModeRecorder(torch.nn.Module):
    """Records, per forward pass, its own and its children's training flags and grad mode."""

    def __init__(self) -> None:
        super().__init__()
        self.dropout = torch.nn.Dropout(0.5)
        self.norm = torch.nn.BatchNorm1d(1)
        self.head = NearestCentre()
        self.seen: list[tuple[bool, bool, bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, self.dropout.training, self.norm.training,
                          torch.is_grad_enabled()))
        return self.head(x)


class BatchRecorder(NearestCentre):
    """Records the size of every batch it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]))
        return super().forward(x)


def nearest_centre() -> NearestCentre:
    """Factory for ``--model _sampler_models:nearest_centre``."""
    return NearestCentre()


def slow_nearest_centre() -> SlowNearestCentre:
    """Factory for ``--model _sampler_models:slow_nearest_centre``."""
    return SlowNearestCentre()


class Failing(torch.nn.Module):
    """A model that raises on every input, like one built for the wrong input shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (1x1 and 4x3)\nmore")


def failing() -> Failing:
    """Factory for ``--model _sampler_models:failing``."""
    return Failing()


def not_a_module():
    """Factory that returns something that is not a torch module (for error tests)."""
    return 42


def class_probabilities(x: float, sigma: float, centres=CENTRES) -> np.ndarray:
    """Exact smoothed probabilities: Gaussian CDF differences between the midpoints."""
    centres = np.asarray(centres, dtype=float)
    cuts = (centres[1:] + centres[:-1]) / 2
    upper = norm.cdf(np.r_[cuts, np.inf], loc=x, scale=sigma)
    lower = norm.cdf(np.r_[-np.inf, cuts], loc=x, scale=sigma)
    return upper - lower


class NaNAbove(NearestCentre):
    """NearestCentre, but a NaN in one logit of every sample whose first coordinate is > t."""

    def __init__(self, threshold: float = 0.5, everywhere: bool = False) -> None:
        super().__init__()
        self.threshold = threshold
        self.everywhere = everywhere

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        above = x[:, :1] > self.threshold
        if self.everywhere:
            return logits.masked_fill(above, float("nan"))
        column = torch.zeros_like(logits, dtype=torch.bool)
        column[:, 2:3] = above  # a NaN in a logit that is never the largest one for x < 1
        return logits.masked_fill(column, float("nan"))


class Above(torch.nn.Module):
    """Class 1 where the first coordinate is > t, else class 0 (the reference for NaNAbove)."""

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        above = (x[:, :1] > self.threshold).to(x.dtype)
        return torch.cat([1 - above, above], dim=1)


def nan_above() -> NaNAbove:
    """Factory for ``--model _sampler_models:nan_above``."""
    return NaNAbove(0.5)


def random_weights() -> torch.nn.Module:
    """A factory that initialises its weights from torch's unseeded global generator."""
    return torch.nn.Linear(1, 3)


class ExitsOnBatches(NearestCentre):
    """Passes the one-input probe, then raises SystemExit on the sampler's batches."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 1:
            raise SystemExit("stop")
        return super().forward(x)


def exits_on_batches() -> ExitsOnBatches:
    """Factory for ``--model _sampler_models:exits_on_batches``."""
    return ExitsOnBatches()


def exits_when_built():
    """A factory that raises SystemExit (it used to end the command silently)."""
    raise SystemExit(3)


class StallsOnRankOne(NearestCentre):
    """Sleeps ``STALL_SECONDS`` (environment) in its first sampling pass on rank 1."""

    def __init__(self) -> None:
        super().__init__()
        import os

        self.stall = float(os.environ.get("STALL_SECONDS", "0"))
        self.rank = int(os.environ.get("RANK", "0"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rank == 1 and self.stall and x.shape[0] > 1:
            time.sleep(self.stall)
            self.stall = 0.0
        return super().forward(x)


def stalls_on_rank_one() -> StallsOnRankOne:
    """Factory for ``--model _sampler_models:stalls_on_rank_one``."""
    return StallsOnRankOne()
