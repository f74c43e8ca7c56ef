"""Root pytest configuration: without torch (an optional extra), skip collecting the
torch-dependent sampler modules' doctests instead of failing on their imports."""

import importlib.util

collect_ignore_glob = [] if importlib.util.find_spec("torch") else ["sampler/*.py"]
