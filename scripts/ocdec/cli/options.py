"""Option types shared by the subcommands: a sky position and a cone radius, checked by argparse.

Used as ``type=`` of ``--ra``, ``--dec`` and ``--radius`` (characterize, simulate, download), so a
value out of range is refused while the command line is read, before any file is touched, with
argparse's one-line error naming the option (``argument --ra: ...``) and exit status 2.
"""

from __future__ import annotations

import argparse


def _number(text: str) -> float:
    """``text`` as a number; NaN and infinities pass here and fail every range below."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def right_ascension(text: str) -> float:
    """Right ascension in degrees, within [0, 360)."""
    value = _number(text)
    if not 0.0 <= value < 360.0:
        raise argparse.ArgumentTypeError(f"right ascension must be within [0, 360) deg, got {text}")
    return value


def declination(text: str) -> float:
    """Declination in degrees, within [-90, 90]."""
    value = _number(text)
    if not -90.0 <= value <= 90.0:
        raise argparse.ArgumentTypeError(f"declination must be within [-90, 90] deg, got {text}")
    return value


def cone_radius(text: str) -> float:
    """A cone radius in degrees, > 0 (and at most 180, the whole sky)."""
    value = _number(text)
    if not 0.0 < value <= 180.0:
        raise argparse.ArgumentTypeError(f"radius must be > 0 and <= 180 deg, got {text}")
    return value


def add_cone_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                     ra_help: str, dec_help: str, radius_help: str) -> None:
    """``--ra``, ``--dec`` and ``--radius`` with the checked types above."""
    parser.add_argument("--ra", type=right_ascension, help=ra_help)
    parser.add_argument("--dec", type=declination, help=dec_help)
    parser.add_argument("--radius", type=cone_radius, help=radius_help)
