"""The noise distributions the sampler can draw, behind one small interface.

A noise object turns a seeded torch generator and a clean input into a block of noisy
copies of it. :mod:`sampler.core` only ever calls :meth:`fill_`, so every distribution gets
the same per-input reproducible streams (:mod:`sampler.streams`), batching and
distributed split.

* :class:`GaussianNoise` (the default): ``x + sigma * eps``, ``eps ~ N(0, I)`` in the
  input's floating-point dtype.
"""

from __future__ import annotations

import math
import numbers
from typing import Protocol

import torch

__all__ = ["Noise", "GaussianNoise"]


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

    def header_fields(self) -> dict[str, object]:
        """What a count file's header must record about this noise."""


class GaussianNoise:
    """Isotropic Gaussian noise ``N(0, sigma^2 I)`` added in the input's dtype.

    Examples
    --------
    >>> noise = GaussianNoise(0.5)
    >>> out = torch.empty(3, 2)
    >>> noise.fill_(out, torch.zeros(2), torch.Generator().manual_seed(0))
    >>> out.shape, noise.header_fields()
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

    def header_fields(self) -> dict[str, object]:
        return {"noise": "gaussian"}
