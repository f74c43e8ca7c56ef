"""Certified accuracy: the numbers, tables and plots that summarize a set of radii.

Conventions (those of Cohen et al. 2019 and Jia et al. 2020):

- A radius is *signed*, as :func:`topk_bounds.certify` returns it: ``radius > 0`` means the
  input's label is certified (in the top-k) within that L2 radius; ``radius <= 0`` means it is
  not certified at all.
- The certified accuracy at ``r`` is the fraction of inputs whose label is certified with a
  radius ``>= r``. An input that is not certified is a miss at every ``r``, ``r = 0`` included;
  it never counts as "certified with radius 0".
- The average certified radius (ACR) is the mean over *all* inputs of ``max(radius, 0)``:
  inputs that are not certified contribute 0. It equals the area under the certified-accuracy
  curve.

The package has one module per concern, and every public name is importable from here:

- :mod:`~topk_bounds.report.metrics`: :func:`certified_accuracy`,
  :func:`average_certified_radius`, :data:`DEFAULT_GRID`;
- :mod:`~topk_bounds.report.table`: :class:`CertifiedAccuracyTable` (Markdown, LaTeX, plot);
- :mod:`~topk_bounds.report.files`: :func:`read_radii`, :func:`write_radii`,
  :func:`write_cohen`, :func:`write_report`;
- :mod:`~topk_bounds.report.adaptive`: the files of ``topk-bounds sample --target-radius``,
  :func:`read_adaptive_file`, :func:`adaptive_report_files` (summary and histogram);
- :mod:`~topk_bounds.report.command`: the ``topk-bounds report`` subcommand
  (:func:`configure`, :func:`run`).

Names load on first use, so importing the subcommand's module stays cheap; nothing here
imports matplotlib until a plot is drawn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "DEFAULT_GRID": "defaults",
    "certified_accuracy": "metrics",
    "average_certified_radius": "metrics",
    "CertifiedAccuracyTable": "table",
    "certified_accuracy_table": "table",
    "RadiiFile": "files",
    "read_radii_file": "files",
    "read_radii": "files",
    "write_radii": "files",
    "write_cohen": "files",
    "write_report": "files",
    "report_files": "files",
    "AdaptiveFile": "adaptive",
    "read_adaptive_file": "adaptive",
    "adaptive_report_files": "adaptive",
    "configure": "command",
    "run": "command",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:
    from .adaptive import AdaptiveFile, adaptive_report_files, read_adaptive_file
    from .command import configure, run
    from .files import (RadiiFile, read_radii, read_radii_file, report_files, write_cohen,
                        write_radii, write_report)
    from .defaults import DEFAULT_GRID
    from .metrics import average_certified_radius, certified_accuracy
    from .table import CertifiedAccuracyTable, certified_accuracy_table


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
