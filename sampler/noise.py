"""The noise distributions the sampler can draw, behind one small interface.

A noise object turns a seeded torch generator and a clean input into a block of noisy
copies of it. :mod:`sampler.core` only ever calls :meth:`fill_`, so every distribution gets
the same per-input reproducible streams (:mod:`sampler.streams`), batching and
distributed split.

* :class:`GaussianNoise` (the default): ``x + sigma * eps``, ``eps ~ N(0, I)`` in the
  input's floating-point dtype. Float noise is not exactly Gaussian, and Voráček and Hein
  (ICLR 2023) show that this can be exploited to produce false certificates.
* :class:`sampler.discrete.DiscreteGaussianNoise` (``noise="discrete"``): for inputs on a
  grid ``{i / grid}``, exact integer offsets on the grid, within a recorded
  total-variation distance ``delta`` of a Gaussian-smoothed classifier's distribution
  (``docs/soundness.md``).

:func:`make_noise` builds either from the options of :func:`sampler.sample_counts`.
"""

from __future__ import annotations

import math
import numbers
from typing import Protocol

import torch

from .discrete import DiscreteGaussianNoise

__all__ = ["Noise", "GaussianNoise", "DiscreteGaussianNoise", "make_noise", "NOISE_KINDS"]

#: The values of the ``noise`` option.
NOISE_KINDS = ("gaussian", "discrete")
#: The grid of ``noise="discrete"`` when none is given: 8-bit images scaled to [0, 1].
DEFAULT_GRID = 255


class Noise(Protocol):
    """What :mod:`sampler.core` needs of a noise distribution."""

    #: Standard deviation of the (continuous) Gaussian the noise stands for.
    sigma: float

    def check_inputs(self, inputs: torch.Tensor) -> None:
        """Raise ``ValueError`` if the noise cannot be applied to ``inputs`` (B, ...)."""

    def fill_(self, out: torch.Tensor, x: torch.Tensor, generator: torch.Generator) -> None:
        """Write ``out.shape[0]`` noisy copies of ``x`` into ``out`` (shape ``(m, *x.shape)``).

        Draws only from ``generator``, on ``out``'s device, so a block depends only on the
        generator's seed.
        """

    def header_fields(self, n_coords: int) -> dict[str, object]:
        """What a count file's header must record about this noise, for inputs of
        ``n_coords`` coordinates (``noise``, and whatever else the counts depend on or
        certification must know, such as a total-variation ``delta``)."""


def make_noise(noise: str, sigma: float, grid: int | None = None) -> Noise:
    """The noise of ``sample_counts(..., noise=noise, grid=grid)``, validated.

    Parameters
    ----------
    noise : {"gaussian", "discrete"}
        Float Gaussian noise, or exact discrete Gaussian offsets on a grid.
    sigma : float
        Standard deviation, finite and ``> 0``.
    grid : int, optional
        Only with ``noise="discrete"``: the grid ``{i / grid}`` of the inputs, an integer
        ``>= 1`` (default 255).

    Examples
    --------
    >>> make_noise("gaussian", 0.5)
    GaussianNoise(sigma=0.5)
    >>> make_noise("discrete", 0.5)
    DiscreteGaussianNoise(sigma=0.5, grid=255)
    >>> make_noise("gaussian", 0.5, grid=255)
    Traceback (most recent call last):
    ...
    ValueError: grid is only used with noise='discrete', got grid=255 with noise='gaussian'
    """
    if not isinstance(noise, str) or noise not in NOISE_KINDS:
        raise ValueError(f"noise must be 'gaussian' or 'discrete', got {noise!r}")
    if noise == "gaussian":
        if grid is not None:
            raise ValueError(f"grid is only used with noise='discrete', got grid={grid!r} "
                             "with noise='gaussian'")
        return GaussianNoise(sigma)
    return DiscreteGaussianNoise(sigma, DEFAULT_GRID if grid is None else grid)


class GaussianNoise:
    """Isotropic Gaussian noise ``N(0, sigma^2 I)`` added in the input's dtype.

    Examples
    --------
    >>> noise = GaussianNoise(0.5)
    >>> out = torch.empty(3, 2)
    >>> noise.fill_(out, torch.zeros(2), torch.Generator().manual_seed(0))
    >>> out.shape, noise.header_fields(2)
    (torch.Size([3, 2]), {'noise': 'gaussian'})
    """

    def __init__(self, sigma: float) -> None:
        if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) \
                or not math.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
        self.sigma = float(sigma)

    def __repr__(self) -> str:
        return f"GaussianNoise(sigma={self.sigma!r})"

    def check_inputs(self, inputs: torch.Tensor) -> None:
        return None

    def fill_(self, out: torch.Tensor, x: torch.Tensor, generator: torch.Generator) -> None:
        out.normal_(0.0, self.sigma, generator=generator).add_(x)

    def header_fields(self, n_coords: int) -> dict[str, object]:
        return {"noise": "gaussian"}
