"""Run a Snakemake rule adapter's ``main`` so that a failing rule's log ends with one line.

The library raises :class:`~ocdec.errors.OcdecError` for a user's mistake (a file, a column, a
setting) or a remote fault it gave up on; the filesystem raises :class:`OSError` (a full disk, a
path that is a directory). :func:`run_rule` logs either as the same one line the command line
prints (the traceback goes to the debug log only) and exits non-zero, so Snakemake reports the
rule as failed and its log says why. Anything else is a bug and keeps its traceback.

Use it as the last line of an adapter::

    run_rule(main, snakemake)  # noqa: F821
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from ocdec.allocator import keep_freed_memory
from ocdec.errors import OcdecError
from ocdec.io import describe_os_error
from ocdec.warm import imports_done

log = logging.getLogger("ocdec.rules")

#: Exit status of a rule that failed for a reported reason (the CLI uses 2 for the same errors).
EXIT_FAILED = 1


def error_line(err: BaseException) -> str:
    """The one line reported for an error :func:`run_rule` catches."""
    if isinstance(err, OSError):
        return describe_os_error(err)
    return " ".join(str(err).split()) or type(err).__name__


def run_rule(main: Callable[[Any], Any], smk: Any) -> None:
    """Call ``main(smk)``; on :class:`OcdecError` or :class:`OSError`, log one line and exit.
    The job's allocator keeps freed memory for reuse first (:mod:`ocdec.allocator`)."""
    keep_freed_memory()
    imports_done()  # the garbage collector back on after the job's imports (warm.delegate)
    try:
        main(smk)
    except (OcdecError, OSError) as err:
        rule = getattr(smk, "rule", None)
        line = error_line(err)
        log.debug("details of the failure", exc_info=True)
        if logging.getLogger().handlers:
            log.error("%s", f"{rule}: {line}" if rule else line)
        else:  # failed before the rule's logging was configured
            print(f"ocdec: error: {line}", file=sys.stderr)
        raise SystemExit(EXIT_FAILED) from None
