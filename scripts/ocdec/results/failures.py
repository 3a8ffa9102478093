"""Why a region failed, read from its rule logs, so the catalogue summary can be written anyway.

When a region's job fails (a refused file, a method error, a time-out), Snakemake does not run
the summary rule, which needs every region's products. The workflow's ``onerror`` handler calls
:func:`summary_after_failure` instead: the catalogue table and figures are written from whatever
exists, each region without its products marked ``failed`` with the one line its rule logged
(:func:`ocdec.runner.run_rule` ends every failing rule's log with it).

The HTML report (``snakemake --report``) refuses to run while a file it shows is missing, so the
failed region's shown files (comparison table, figures) are written as placeholders that say
why, dated 1970: older than any input, they are redone by the next run (mtime rerun trigger), as
are the failed region's missing products, so a rerun after the fix redoes only that region and
the summary.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ocdec import products

log = logging.getLogger(__name__)

_FIGURE_SUFFIXES = frozenset({".png", ".pdf", ".svg"})

# "2026-12-01 03:10:44,123 ERROR ocdec.rules: quality: stars.csv: no column 'pmra'"
_ERROR = re.compile(r"^\S+ \S+ (?:ERROR|CRITICAL) (?P<logger>[\w.]+): (?P<message>.*)$")
# The last line of a Python traceback: "ValueError: message".
_EXCEPTION = re.compile(r"^(?:[\w.]+\.)?(?P<kind>[A-Z]\w*(?:Error|Exception|Interrupt|Exit))"
                        r"(?::\s*(?P<message>.*))?$")


def last_error(log_path: str | Path) -> str | None:
    """The one-line reason a rule's log ends with, or None when it records no error.

    A reported failure is the last ERROR line; a bug ("uncaught error" and a traceback) is the
    exception line that closes the traceback; a job killed from outside (time limit, memory)
    leaves no line, and the caller says the job did not finish.
    """
    try:
        lines = Path(log_path).read_text(errors="replace").splitlines()
    except OSError:
        return None
    reason = None
    for i, line in enumerate(lines):
        match = _ERROR.match(line)
        if not match:
            continue
        message = match["message"].strip()
        if message == "uncaught error":
            exception = next((m for m in (_EXCEPTION.match(x.strip()) for x in lines[i + 1:][::-1])
                              if m), None)
            if exception:
                message = f"{exception['kind']}: {exception['message'] or ''}".rstrip(": ")
        reason = message
    return reason


def region_failures(
    region_ids: Sequence[str], expected: Mapping[str, Sequence[str | Path]], log_root: str | Path
) -> dict[str, str]:
    """{region: reason} for every region with a missing expected product.

    ``expected`` maps each region to the files its row needs; the reason is the last error in
    any of the region's rule logs (``log_root/*/{region}.log``), else the error of a run-wide job
    (the archive check) that kept it from running, else a note that its jobs did not finish
    (killed from outside, or not run because the workflow stopped first).
    """
    failures = {}
    logs = sorted(Path(log_root).glob("*/*.log"), key=lambda p: p.stat().st_mtime)
    ids = set(region_ids)
    # A failed job of the whole run (the archive check) is why regions were not run.
    run_errors = [r for p in logs if p.stem not in ids for r in [last_error(p)] if r]
    for rid in region_ids:
        missing = [str(p) for p in expected.get(rid, ()) if not Path(p).exists()]
        if not missing:
            continue
        reasons = [r for p in logs if p.stem == rid for r in [last_error(p)] if r]
        if reasons:
            failures[rid] = reasons[-1]
        elif run_errors:
            failures[rid] = f"not run: {run_errors[-1]}"
        else:
            failures[rid] = f"did not finish (no error logged; missing {', '.join(missing)})"
    return failures


def summary_after_failure(
    inputs: Mapping[str, Sequence[str]],
    outputs: Mapping[str, str],
    *,
    regions: Sequence[Mapping[str, Any]],
    methods: Sequence[str],
    placeholders: Sequence[str | Path] = (),
    log_root: str | Path = "logs",
) -> dict[str, str]:
    """Write the catalogue summary despite failed regions; returns {region: reason}.

    ``inputs`` and ``outputs`` are the summary rule's (paths that may not exist);
    ``placeholders`` the workflow's outputs, of which the per-region files the report shows
    (results/{region}/comparison.tsv and figures) are written for failed regions where absent
    (:func:`write_placeholders`). Never raises,
    since it runs in the workflow's error handler after the real error has been reported.
    """
    from ocdec.results.summary import catalogue_summary

    try:
        expected: dict[str, list[str]] = {}
        for paths in inputs.values():
            for path in paths:
                parts = Path(path).parts
                # results/{region}/... : the region is the folder under results/
                expected.setdefault(parts[1] if len(parts) > 2 else "", []).append(str(path))
        ids = [str(r["id"]) for r in regions]
        failures = region_failures(ids, expected, log_root)
        present = {name: [p for p in paths if Path(p).exists()] for name, paths in inputs.items()}
        catalogue_summary(present, outputs, regions=regions, methods=methods, errors=failures)
        names = {str(r["id"]): r for r in regions}
        ran = {p.stem for p in Path(log_root).glob("*/*.log")}
        shown: dict[str, list[Path]] = {}
        for path in map(Path, placeholders):
            rid = path.parts[1] if len(path.parts) > 2 else ""
            is_shown = path.suffix in _FIGURE_SUFFIXES or path.name == products.COMPARISON
            # A region none of whose jobs ran (the run stopped first) needs no report.
            if rid in failures and rid in ran and is_shown and not path.exists():
                shown.setdefault(rid, []).append(path)
        for rid, paths in shown.items():
            write_placeholders(paths, names[rid], failures[rid])
    except Exception:  # noqa: BLE001 (the workflow's own error is already reported)
        log.exception("the catalogue summary could not be written after the failure")
        return {}
    log.warning("catalogue summary written with %d failed region(s): %s", len(failures),
                "; ".join(f"{rid}: {why}" for rid, why in failures.items()))
    return failures


def write_placeholders(paths: Sequence[str | Path], region: Mapping[str, Any], reason: str
                       ) -> None:
    """A failed region's figures (one drawing saying why) and empty comparison table, dated 1970
    so that any rerun redoes them."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from ocdec.results.comparison import COLUMNS, write_comparison
    from ocdec.results.figures.style import save_figure, skipped_figure

    fig = None
    for path in map(Path, paths):
        if path.suffix == ".tsv":
            write_comparison(path, pd.DataFrame(columns=list(COLUMNS)))
        else:
            fig = fig or skipped_figure(region, reason, "failed")
            save_figure(fig, path)
        os.utime(path, (0, 0))
    if fig is not None:
        plt.close(fig)
