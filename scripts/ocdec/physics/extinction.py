"""Extinction in the Gaia EDR3 passbands: the colour-dependent Fitzpatrick et al. (2019) law.

The Gaia collaboration integrated the Fitzpatrick, Massa, Gordon et al. (2019, ApJ 886, 108)
extinction curve over the EDR3 passbands of Riello et al. (2021, A&A 649, A3) and published
polynomial fits of k_X = A_X / A_0 as functions of the intrinsic colour X = (BP-RP)_0 and of A_0,
the monochromatic extinction at 550 nm ("EDR3 extinction law", https://www.cosmos.esa.int/web/
gaia/edr3-extinction-law, file Fitz19_EDR3_MainSequence.csv, rows with X = BP-RP):

    k = a1 + a2 X + a3 X^2 + a4 X^3 + a5 A0 + a6 A0^2 + a7 A0^3 + a8 X A0 + a9 A0 X^2 + a10 X A0^2

A_0 at 550 nm is close to Johnson A_V; ocdec reports it as ``av`` (as Cantat-Gaudin et al. 2020
and Hunt & Reffert 2023 report their A_V). The functions work on numpy or JAX arrays alike.
"""

from __future__ import annotations

from typing import Any

#: Coefficients a1..a10 of k_X for the Gaia EDR3 G, BP and RP bands, X = (BP-RP)_0.
FITZ19_EDR3: dict[str, tuple[float, ...]] = {
    "G": (0.995969721536602, -0.159726460302015, 0.0122380738156057, 0.00090726555099859,
          -0.0377160263914123, 0.00151347495244888, -2.52364537395142e-05, 0.0114522658102451,
          -0.000936914989014318, -0.000260296774134201),
    "BP": (1.15363197483424, -0.0814012991657388, -0.036013023976704, 0.0192143585568966,
           -0.022397548243016, 0.000840562680547171, -1.31018008013549e-05, 0.00660124080271006,
           -0.000882247501989453, -0.000111215755291684),
    "RP": (0.66320787941067, -0.0179847164933981, 0.000493769449961458, -0.00267994405695751,
           -0.00651422146709376, 3.30179903473159e-05, 1.57894227641527e-06,
           -7.9800898337247e-05, 0.000255679812110045, 1.10476584967393e-05),
}  # fmt: skip
#: The fits were made for -0.06 < (BP-RP)_0 < 2.5 (main sequence); colours are clipped to it.
COLOUR_RANGE = (-0.06, 2.5)
#: E(B-V) = A_V / R_V with the diffuse-ISM R_V = 3.1 (to compare with Babusiaux et al. 2018).
R_V = 3.1


def k_coefficient(band: str, colour0: Any, a0: Any, xp: Any = None) -> Any:
    """k_X = A_X / A_0 in ``band`` (G, BP, RP) for intrinsic colour ``colour0`` and ``a0``."""
    if xp is None:
        import numpy as xp
    a = FITZ19_EDR3[band]
    x = xp.clip(colour0, *COLOUR_RANGE)
    return (a[0] + a[1] * x + a[2] * x**2 + a[3] * x**3 + a[4] * a0 + a[5] * a0**2
            + a[6] * a0**3 + a[7] * x * a0 + a[8] * a0 * x**2 + a[9] * x * a0**2)


def gaia_extinction(colour0: Any, a0: Any, xp: Any = None) -> tuple[Any, Any]:
    """(A_G, E(BP-RP)) for stars of intrinsic colour ``colour0`` behind ``a0`` magnitudes."""
    a_g = k_coefficient("G", colour0, a0, xp) * a0
    e_col = (k_coefficient("BP", colour0, a0, xp) - k_coefficient("RP", colour0, a0, xp)) * a0
    return a_g, e_col
