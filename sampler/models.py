"""Small base classifiers for the examples (torch).

:class:`DigitsCNN` is sized for scikit-learn's 8x8 digits: about 30k parameters, cheap enough
that a two-core CPU trains it in seconds and evaluates it on a million noisy copies in well
under a minute.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DigitsCNN"]


class DigitsCNN(nn.Module):
    """A three-layer convolutional network for 1 x 8 x 8 images and 10 classes.

    ``conv(1->16) -> conv(16->32) -> pool -> conv(32->64) -> pool -> fc(256->64) -> fc(64->c)``,
    with ReLU activations. Inputs are expected in [0, 1] (before noise); the network centres
    them itself, so the noise level sigma keeps its meaning in pixel units.

    Parameters
    ----------
    num_classes : int, optional
        Number of output logits (default 10).

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> DigitsCNN()(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x - 0.5))
