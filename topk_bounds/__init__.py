"""topk-bounds: certified top-k robustness radii for randomized smoothing.

Exact, sound and vectorized implementation of Jia, Cao, Wang and Gong, "Certified
Robustness for Top-k Predictions against Adversarial Perturbations via Randomized
Smoothing" (ICLR 2020). The package needs only numpy, scipy and mpmath; the torch
sampler lives in the separate ``sampler`` package.

The public names below are imported on first use (a module ``__getattr__``, PEP 562), so
``import topk_bounds`` and ``import topk_bounds.cli`` stay cheap: the command line can set
up its signal handling before numpy and scipy load.

>>> import topk_bounds
>>> topk_bounds.certify.__name__, topk_bounds.read_counts.__module__
('certify', 'topk_bounds.io')
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> the submodule that defines it
_EXPORTS = {
    "topk_radius": "radius",
    "certify": "certify",
    "predict": "certify",
    "CertifyResult": "certify",
    "PredictResult": "certify",
    "clopper_pearson_lower": "bounds",
    "clopper_pearson_upper": "bounds",
    "clopper_pearson_lower_complement": "bounds",
    "certify_adaptive": "adaptive",
    "AdaptiveResult": "adaptive",
    "read_counts": "io",
    "CountFile": "io",
    "worst_case_classifier": "tightness",
    "classifier_probabilities": "tightness",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from .adaptive import AdaptiveResult, certify_adaptive
    from .bounds import clopper_pearson_lower, clopper_pearson_lower_complement, clopper_pearson_upper
    from .certify import CertifyResult, PredictResult, certify, predict
    from .io import CountFile, read_counts
    from .radius import topk_radius
    from .tightness import classifier_probabilities, worst_case_classifier


def __getattr__(name: str):
    """Load a public name, or a submodule (``topk_bounds.bounds``), on first access."""
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        setattr(sys.modules[__name__], name, value)
        return value
    if not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """The package's module type: ``topk_bounds.certify`` stays the function.

    Importing the submodule ``topk_bounds.certify`` makes Python set the package's
    attribute ``certify`` to that module. The eager ``from .certify import certify`` this
    package used to run rebound it to the function; this does the same, lazily, so
    ``from topk_bounds import certify`` is the function whatever was imported before.
    """

    def __setattr__(self, name: str, value) -> None:
        if name == "certify" and isinstance(value, types.ModuleType):
            value = value.certify
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
