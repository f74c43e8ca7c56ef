"""Two-stage sampling of Cohen et al.: select with ``n0`` samples, estimate with ``n`` fresh ones.

Choosing the labels to certify from the same samples that bound their probabilities biases
the bounds; Cohen et al. [1]_ therefore draw ``n0`` samples to select and ``n`` new ones to
estimate. :func:`two_stage_counts` does both with disjoint random streams, so the two stages
never share a sample.

References
----------
.. [1] J. Cohen, E. Rosenfeld and J. Z. Kolter, "Certified adversarial robustness via
   randomized smoothing", ICML 2019.
.. [2] J. Jia, X. Cao, B. Wang and N. Z. Gong, "Certified robustness for top-k predictions
   against adversarial perturbations via randomized smoothing", ICLR 2020.
"""

from __future__ import annotations

import datetime
import operator
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .core import prepare, sample_size
from .streams import ESTIMATION, SELECTION

__all__ = ["TwoStageCounts", "two_stage_counts"]


@dataclass(frozen=True, repr=False)
class TwoStageCounts:
    """Counts of the two stages, from independent samples.

    Attributes
    ----------
    selection : ndarray of int64, shape (B, C)
        Counts of the ``n0`` selection samples; rows sum to ``n0``.
    estimation : ndarray of int64, shape (B, C)
        Counts of the ``n`` estimation samples; rows sum to ``n``. They equal
        ``sample_counts(...)`` with the same seed, indices and ``n``.
    """

    selection: np.ndarray
    estimation: np.ndarray

    def __repr__(self) -> str:
        n_inputs, n_classes = self.estimation.shape
        return (f"TwoStageCounts(inputs={n_inputs}, classes={n_classes}, "
                f"n0={int(self.selection[0].sum())}, n={int(self.estimation[0].sum())})")

    def candidates(self, k: int = 1) -> np.ndarray:
        """The ``k`` labels with the largest selection counts, per input.

        Parameters
        ----------
        k : int, default 1
            How many labels, ``1 <= k <= C``.

        Returns
        -------
        ndarray of int64, shape (B, k)
            Labels in decreasing order of selection count; ties go to the smaller label.
        """
        columns = self.selection.shape[1]
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= columns:
            raise ValueError(f"k must be an integer in 1..{columns}, got {k!r}")
        order = np.argsort(-self.selection, axis=1, kind="stable")
        return np.ascontiguousarray(order[:, :operator.index(k)]).astype(np.int64)


def two_stage_counts(model: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, *,
                     sigma: float, n0: int, n: int, batch_size: int,
                     num_classes: int | None = None, seed: int | None = None,
                     device: str | torch.device | None = None,
                     indices: Sequence[int] | None = None, progress: Any = False,
                     distributed: bool | None = None,
                     timeout: float | datetime.timedelta | None = None, noise: str = "gaussian",
                     grid: int | None = None) -> TwoStageCounts:
    """Selection counts from ``n0`` samples and estimation counts from ``n`` fresh samples.

    The procedure of Cohen et al. [1]_, for top-k as in Jia et al. [2]_: choose the
    candidate labels from the selection counts (:meth:`TwoStageCounts.candidates`), then
    bound their probabilities with the estimation counts only. The two stages draw from
    disjoint random streams (:data:`sampler.streams.SELECTION` and
    :data:`~sampler.streams.ESTIMATION`), so no sample is used twice and the estimation
    counts are exactly those of :func:`sampler.sample_counts` with the same arguments.

    Parameters
    ----------
    n0 : int
        Selection samples per input, ``>= 1``.
    n : int
        Estimation samples per input, ``>= 1``.
    model, inputs, sigma, batch_size, num_classes, seed, device, indices, progress
        As for :func:`sampler.sample_counts`.
    distributed, timeout
        As for :func:`sampler.sample_counts`: the timeout bounds every collective of
        both stages.
    noise, grid
        As for :func:`sampler.sample_counts`; both stages draw the same kind of noise.

    Returns
    -------
    TwoStageCounts
        ``selection`` (rows sum to ``n0``) and ``estimation`` (rows sum to ``n``).

    References
    ----------
    .. [1] J. Cohen, E. Rosenfeld and J. Z. Kolter, "Certified adversarial robustness via
       randomized smoothing", ICML 2019.
    .. [2] J. Jia, X. Cao, B. Wang and N. Z. Gong, "Certified robustness for top-k
       predictions against adversarial perturbations via randomized smoothing", ICLR 2020.

    Examples
    --------
    >>> import torch
    >>> from sampler import sample_counts, two_stage_counts
    >>> sign = lambda x: torch.cat([-x, x], dim=1)
    >>> x = torch.tensor([[-2.0], [2.0]])
    >>> result = two_stage_counts(sign, x, sigma=1.0, n0=100, n=1000, batch_size=512, seed=3)
    >>> result
    TwoStageCounts(inputs=2, classes=2, n0=100, n=1000)
    >>> result.candidates(1).ravel().tolist()
    [0, 1]
    >>> bool((result.estimation == sample_counts(sign, x, sigma=1.0, n=1000,
    ...                                          batch_size=512, seed=3)).all())
    True
    """
    n0 = sample_size("n0", n0)
    n = sample_size("n", n)
    request = prepare(model, inputs, sigma=sigma, batch_size=batch_size,
                      num_classes=num_classes, seed=seed, device=device, indices=indices,
                      progress=progress, distributed=distributed, timeout=timeout,
                      noise=noise, grid=grid)
    request.check(n0)
    request.check(n)  # before any sampling
    selection = request.count(n0, SELECTION)
    if request.num_classes is None:  # both stages get the same columns
        request.num_classes = selection.shape[1]
    estimation = request.count(n, ESTIMATION)
    return TwoStageCounts(selection=selection, estimation=estimation)
