"""Count arrays for :mod:`topk_bounds` from a torch model under Gaussian noise.

Public API (needs the ``torch`` extra, ``pip install 'topk-bounds[torch]'``; importing this
package does not import torch, so the ``topk-bounds`` command stays fast without it):

- :func:`sample_counts`: ``n`` noisy predictions per input, counted per class.
- :func:`two_stage_counts` and :class:`TwoStageCounts`: Cohen et al.'s selection with
  ``n0`` samples, then estimation with ``n`` fresh samples.
- :func:`sample_adaptive`: adaptive certification at a target radius
  (:func:`topk_bounds.adaptive.certify_adaptive`), each input sampled only until it is
  decided; returns a :class:`topk_bounds.adaptive.AdaptiveResult`.
- :class:`ModelError`: the model raised on a batch, or returned non-finite logits.
- :class:`DistributedError`: a torch.distributed step timed out or lost a peer rank.

The command ``topk-bounds sample`` (:mod:`sampler.cli`) writes the counts to a count file
(with ``--target-radius``, the adaptive decisions).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["sample_counts", "two_stage_counts", "TwoStageCounts", "sample_adaptive",
           "ModelError", "DistributedError"]

_WHERE = {
    "sample_counts": "sampler.core",
    "ModelError": "sampler.core",
    "two_stage_counts": "sampler.two_stage",
    "TwoStageCounts": "sampler.two_stage",
    "sample_adaptive": "sampler.adaptive",
    "DistributedError": "sampler.collectives",
}

#: What to install when torch is missing.
EXTRA = "pip install 'topk-bounds[torch]'"


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        try:
            module = importlib.import_module(_WHERE[name])
        except ImportError as exc:
            missing = exc.name or ""
            if missing == "torch" or missing.startswith("torch."):
                raise ImportError(f"sampler.{name} needs torch, which is not installed or "
                                  f"cannot be imported ({exc}); install the extra: {EXTRA}",
                                  name=exc.name) from exc
            raise
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sampler' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
