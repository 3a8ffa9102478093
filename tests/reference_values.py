"""A SIMBAD-like reference for NGC 2682 (M67), shared by the comparison and summary tests."""

from __future__ import annotations

import math

M67_SIMBAD = {
    "source": "SIMBAD",
    "pmra": -10.9737,
    "pmra_error": 0.0064,
    "pmdec": -2.9396,
    "pmdec_error": 0.0063,
    "parallax": 1.1325,
    "parallax_error": 0.0011,
    "n_stars": math.nan,
}
