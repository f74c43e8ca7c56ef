"""Sphinx configuration of the topk-bounds documentation.

Build (warnings are errors)::

    sphinx-build -W -b html docs docs/_build/html

The pages are MyST Markdown; their ``>>>`` examples also run as doctests under pytest
(``python -m pytest docs``). No network access is needed to build: MathJax is loaded by the
browser when the pages are viewed.
"""

from __future__ import annotations

import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
if ROOT not in sys.path:  # document the working tree, not an installed copy
    sys.path.insert(0, ROOT)

project = "topk-bounds"
author = "the topk-bounds authors"
copyright = "2025, the topk-bounds authors"
release = "0.1.0"
version = "0.1"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: $...$ and $$...$$ math, amsmath environments, ::: fences, heading anchors.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# numpydoc-style docstrings.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = False
napoleon_preprocess_types = False

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_preserve_defaults = True

html_theme = "furo"
html_title = "topk-bounds"
html_static_path: list[str] = []
pygments_style = "sphinx"
pygments_dark_style = "monokai"


# The docstrings cite their references numpydoc-style: ``[1]_`` in the text, ``.. [1] ...``
# under References. Sphinx 9's autodoc parses each docstring on its own, so a footnote
# reference cannot be resolved (and several docstrings on one page would define footnote
# "1" twice): both are turned into plain text, the definitions into a list.
_FOOTNOTE_DEF = re.compile(r"^(\s*)\.\. \[(\d+)\] ?(.*)$")
_FOOTNOTE_REF = re.compile(r"\[(\d+)\]_")


def _plain_footnotes(app, what, name, obj, options, lines):
    out: list[str] = []
    item_indent = None  # indentation of the definition being rewritten, if any
    for line in lines:
        line = _FOOTNOTE_REF.sub(r"[\1]", line)
        match = _FOOTNOTE_DEF.match(line)
        indent = len(line) - len(line.lstrip())
        if match:
            if out and out[-1].strip() and item_indent is None:
                out.append("")  # a list needs a blank line before it
            out.append(f"{match.group(1)}- [{match.group(2)}] {match.group(3)}")
            item_indent = len(match.group(1))
        elif item_indent is not None and line.strip() and indent > item_indent:
            out.append(" " * (item_indent + 2) + line.strip())  # continuation of the item
        else:
            if item_indent is not None and line.strip():
                out.append("")  # and a blank line after it
            item_indent = None
            out.append(line)
    lines[:] = out


def setup(app):
    app.connect("autodoc-process-docstring", _plain_footnotes)
