"""The ``ocdec`` command line: one subcommand per module in :mod:`ocdec.cli`.

Each command module defines ``register(subparsers)`` that adds its parser and sets ``func`` to a
callable taking the parsed ``argparse.Namespace`` and returning an exit code. User mistakes raise
:class:`ocdec.errors.OcdecError`, printed here as one line with a non-zero exit, never a traceback;
so are filesystem errors (:class:`OSError`: a full disk, a path that is a directory).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from ocdec import __version__
from ocdec.allocator import keep_freed_memory
from ocdec.errors import OcdecError
from ocdec.io import describe_os_error
from ocdec.logs import configure_logging

COMMANDS = (
    "regions",
    "download",
    "simulate",
    "quality",
    "characterize",
    "validate",
    "reference",
    "parameters",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocdec", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ocdec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--log-file", help="also write the log to this file")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"ocdec.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_file, logging.DEBUG if args.verbose else logging.INFO)
    keep_freed_memory()  # the peak search's grids reuse memory (ocdec.allocator)
    try:
        return int(args.func(args) or 0)
    except OcdecError as err:
        print(f"ocdec {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a path that is a directory, a permission
        logging.getLogger("ocdec").debug("filesystem error", exc_info=True)
        print(f"ocdec {args.command}: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ocdec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
