"""Shared test configuration: hypothesis profiles, mpmath hygiene, reference data."""

from __future__ import annotations

import os
from pathlib import Path

import mpmath
import pytest
from hypothesis import HealthCheck, settings

# "dev" keeps the local loop quick; "ci" (selected by CI=true or HYPOTHESIS_PROFILE=ci)
# runs many more examples. Deadlines are off: mpmath references are slow by design.
settings.register_profile("dev", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=500, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
_default = "ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _mpmath_precision_is_restored():
    """Every test must leave mpmath's global precision as it found it."""
    before = mpmath.mp.prec
    yield
    after = mpmath.mp.prec
    mpmath.mp.prec = before
    assert after == before, f"test changed mpmath.mp.prec from {before} to {after}"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the checkout (published counts and radii of Jia et al.)."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the reference data at {SHARED_DATA}")
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA
