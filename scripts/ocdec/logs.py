"""Logging set-up shared by the command line and the Snakemake rule scripts."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> None:
    """Log to ``log_file`` (a rule's ``log[0]``) and to stderr; uncaught errors are logged too."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)

    def log_uncaught(exc_type, exc, tb):  # type: ignore[no-untyped-def]
        logging.getLogger("ocdec").error("uncaught error", exc_info=(exc_type, exc, tb))

    sys.excepthook = log_uncaught
