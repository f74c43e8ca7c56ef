"""topk-bounds: certified top-k robustness radii for randomized smoothing.

Exact, sound and vectorized implementation of Jia, Cao, Wang and Gong, "Certified
Robustness for Top-k Predictions against Adversarial Perturbations via Randomized
Smoothing" (ICLR 2020). The package needs only numpy, scipy and mpmath; the torch
sampler lives in the separate ``sampler`` package.
"""

from .bounds import clopper_pearson_lower, clopper_pearson_lower_complement, clopper_pearson_upper
from .certify import CertifyResult, PredictResult, certify, predict
from .io import CountFile, read_counts
from .radius import topk_radius
from .tightness import classifier_probabilities, worst_case_classifier

__version__ = "0.1.0"

__all__ = [
    "topk_radius",
    "certify",
    "predict",
    "CertifyResult",
    "PredictResult",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "clopper_pearson_lower_complement",
    "read_counts",
    "CountFile",
    "worst_case_classifier",
    "classifier_probabilities",
]
