"""Count arrays for :mod:`topk_bounds` from a torch model under Gaussian noise.

Public API (needs the ``torch`` extra; importing this package does not import torch, so
the ``topk-bounds`` command stays fast without it):

- :func:`sample_counts`: ``n`` noisy predictions per input, counted per class.
- :func:`two_stage_counts` and :class:`TwoStageCounts`: Cohen et al.'s selection with
  ``n0`` samples, then estimation with ``n`` fresh samples.
- :class:`ModelError`: the model raised on a batch.

The command ``topk-bounds sample`` (:mod:`sampler.cli`) writes the counts to a count file.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["sample_counts", "two_stage_counts", "TwoStageCounts", "ModelError"]

_WHERE = {
    "sample_counts": "sampler.core",
    "ModelError": "sampler.core",
    "two_stage_counts": "sampler.two_stage",
    "TwoStageCounts": "sampler.two_stage",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sampler' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
