"""Sphinx configuration of the ocdec documentation (``make docs``; builds offline)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent / "scripts"))  # the package, installed or not
# ... and for the tutorial's kernel, a separate process
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(DOCS.parent / "scripts"), os.environ.get("PYTHONPATH")) if p)
os.environ.setdefault("OCDEC_PROGRESS", "log")  # no progress bars in executed cells

project = "ocdec"
author = "the ocdec developers"
copyright = "the ocdec developers, MIT licence"

extensions = [
    "myst_nb",  # Markdown (MyST) pages and the executed tutorial notebook
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # numpydoc-style sections
    "sphinx.ext.mathjax",
    "ocdec_docs",  # configuration, command-line and API pages generated from the code
]

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "_generated", "jupyter_execute", "**.ipynb_checkpoints"]
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

# The tutorial runs at every build (simulated data only: no network, no shared data), so it
# cannot rot; an error in a cell fails the build.
nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True

autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = False
napoleon_numpy_docstring = True

html_theme = "furo"
html_title = "ocdec"
html_static_path: list[str] = []
# Offline: no intersphinx, no remote images or fonts.
html_theme_options = {"navigation_with_keys": True}
suppress_warnings = ["mystnb.unknown_mime_type"]
