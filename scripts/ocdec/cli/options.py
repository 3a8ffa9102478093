"""Option types checked by argparse: a sky position, a cone radius, counts and fractions.

Used as ``type=`` of the subcommands' ``--ra``, ``--dec`` and ``--radius`` (characterize,
simulate, download) and of scripts/check_gpu.py's numbers, so a value out of range is refused
while the command line is read, before any file is touched, with argparse's one-line error naming
the option (``argument --ra: expected ..., got '400'``) and exit status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def checked(kind: type, ok: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    """An argparse ``type``: ``kind(text)`` where ``ok`` holds of it (NaN fails every
    comparison), else an error saying what was expected."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in its own messages
    return parse


right_ascension = checked(float, lambda v: 0.0 <= v < 360.0,
                          "a right ascension within [0, 360) deg")
declination = checked(float, lambda v: -90.0 <= v <= 90.0, "a declination within [-90, 90] deg")
# at most 180 deg: the whole sky
cone_radius = checked(float, lambda v: 0.0 < v <= 180.0, "a radius > 0 and <= 180 deg")
positive_int = checked(int, lambda v: v >= 1, "a positive integer")
count = checked(int, lambda v: v >= 0, "an integer >= 0")  # a seed, a number of epochs
fraction = checked(float, lambda v: 0 < v <= 1, "a number within (0, 1]")


def add_cone_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                     ra_help: str, dec_help: str, radius_help: str) -> None:
    """``--ra``, ``--dec`` and ``--radius`` with the checked types above."""
    parser.add_argument("--ra", type=right_ascension, help=ra_help)
    parser.add_argument("--dec", type=declination, help=dec_help)
    parser.add_argument("--radius", type=cone_radius, help=radius_help)
