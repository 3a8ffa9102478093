"""Run a membership method on one region's star table and write its products (issue 3, item 7).

``DIR/members.parquet`` (source_id, p_member, member, group, then the input canonical columns;
thesis mode adds its per-selection columns), ``DIR/summary.json``, ``DIR/history.tsv`` (DEC training
curve) and, for thesis mode, ``DIR/silhouette.tsv``. Used by the command line and the workflow.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ocdec.errors import OcdecError
from ocdec.io import write_json, write_parquet, write_tsv
from ocdec.methods.astrometry import cluster_parameters
from ocdec.methods.dec import HISTORY_COLUMNS
from ocdec.methods.default.method import ClusterPriors, MemberSettings, run_default

log = logging.getLogger(__name__)

METHODS = ("default", "thesis")
THESIS_EXTRA = ["kmeans_group", "kmeans_member", "dec_group", "dec_member", "dec_filtered_member"]
N_SEEDS = 5


def characterize(
    stars: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    method: str = "default",
    priors: ClusterPriors | None = None,
    seed: int = 0,
    n_seeds: int = N_SEEDS,
    settings: Any = None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Characterize the cluster in ``stars`` with ``method`` and write the products to ``out_dir``.

    The default method uses seeds ``seed .. seed + n_seeds - 1``; thesis mode uses ``seed``.
    ``settings`` is a :class:`ocdec.methods.default.method.MemberSettings` (default) or
    :class:`ocdec.methods.thesis.ThesisSettings` (thesis). Returns the summary dictionary.
    """
    if method not in METHODS:
        raise OcdecError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if n_seeds < 1:
        raise OcdecError(f"need at least one seed, got {n_seeds}")
    priors = priors or ClusterPriors()
    _check_stars(stars)
    stars = stars.reset_index(drop=True)
    start = time.perf_counter()
    if method == "default":
        base = settings or MemberSettings()
        member_settings = MemberSettings(**{**base.__dict__,
                                            "seeds": tuple(range(seed, seed + n_seeds))})
        result = run_default(stars, priors, member_settings)
        p_member, member, group = result.p_member, result.member, result.group
        history = result.history
        params = cluster_parameters(stars, member)
        extra: dict[str, Any] = {
            "seeds": result.seeds, "seed_jaccard": result.seed_jaccard,
            "seed_jaccard_min": result.seed_jaccard_min, "stages": result.stages,
            "peak": result.peak.as_dict(), "model": result.model,
            "diagnostics": result.diagnostics,
        }
        extra_columns = pd.DataFrame(index=stars.index)
        silhouette = None
    else:
        from ocdec.methods.thesis import run_thesis

        prior = {"pmra": priors.pmra, "pmdec": priors.pmdec, "parallax": priors.parallax}
        thesis = run_thesis(stars, settings, seed=seed, prior=prior)
        tm = thesis.members.reset_index(drop=True)
        p_member = tm["p_member"].to_numpy(float)
        member = tm["member"].to_numpy(bool)
        group = tm["group"].to_numpy(np.int64)
        history = thesis.history
        params = thesis.selections["dec_filtered"]
        extra = {"seeds": [seed], "seed_jaccard": 1.0, "seed_jaccard_min": 1.0,
                 "stages": thesis.stages, **thesis.summary()}
        extra_columns = tm[THESIS_EXTRA]
        silhouette = thesis.silhouette
    runtime = time.perf_counter() - start

    members = _members_table(stars, p_member, member, group, extra_columns)
    summary: dict[str, Any] = {
        "status": "done",
        "method": method,
        "n_stars": int(len(stars)),
        "n_members": int(member.sum()),
    }
    for key in ("pmra", "pmra_error", "pmdec", "pmdec_error", "parallax", "parallax_error",
                "ra", "dec", "r50_deg"):
        summary[key] = _finite_or_none(params.get(key))
    summary.update(extra)
    summary["runtime_s"] = runtime
    summary["parameters"] = params
    summary["priors"] = {k: v for k, v in priors.__dict__.items() if v is not None}
    write_outputs(out_dir, members, summary, history, silhouette, provenance)
    log.info("%s: %d members of %d stars; pmra %.3f pmdec %.3f parallax %.4f; %.1f s", method,
             summary["n_members"], summary["n_stars"], params.get("pmra", math.nan),
             params.get("pmdec", math.nan), params.get("parallax", math.nan), runtime)
    return summary


def _check_stars(stars: pd.DataFrame) -> None:
    for col in ("parallax", "pmra", "pmdec"):
        if col not in stars.columns:
            raise OcdecError(f"star table has no {col!r} column")
        if not np.isfinite(pd.to_numeric(stars[col], errors="coerce").to_numpy(float)).any():
            raise OcdecError(f"column {col!r} has no finite values")


def _members_table(stars: pd.DataFrame, p_member: np.ndarray, member: np.ndarray,
                   group: np.ndarray, extra: pd.DataFrame) -> pd.DataFrame:
    ids = (stars["source_id"].to_numpy() if "source_id" in stars
           else np.arange(len(stars), dtype=np.int64))
    head = pd.DataFrame({"source_id": ids, "p_member": np.asarray(p_member, float),
                         "member": np.asarray(member, bool), "group": np.asarray(group, np.int64)})
    rest = stars.drop(columns=[c for c in ("source_id", "p_member", "member", "group")
                               if c in stars.columns])
    return pd.concat([head, extra.reset_index(drop=True), rest.reset_index(drop=True)], axis=1)


def _finite_or_none(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def write_outputs(out_dir: str | os.PathLike[str], members: pd.DataFrame, summary: dict[str, Any],
                  history: pd.DataFrame | None, silhouette: pd.DataFrame | None = None,
                  provenance: dict[str, Any] | None = None) -> None:
    """members.parquet, history.tsv (+ silhouette.tsv), and summary.json last: its presence says
    the rest is complete."""
    out = Path(out_dir)
    write_parquet(out / "members.parquet", members,
                  {**(provenance or {}), "method": summary.get("method"), "product": "members"})
    hist = (history if history is not None else pd.DataFrame()).reindex(columns=HISTORY_COLUMNS)
    write_tsv(out / "history.tsv", hist)
    if silhouette is not None:
        write_tsv(out / "silhouette.tsv", silhouette.reindex(columns=["k", "silhouette"]))
    write_json(out / "summary.json", _json_safe(summary))


def write_skipped(out_dir: str | os.PathLike[str], method: str, stars: pd.DataFrame | None,
                  reason: str) -> dict[str, Any]:
    """The products of a region that was skipped upstream (too few usable stars): same files, no
    members, ``status`` "skipped" and the reason."""
    stars = stars if stars is not None else pd.DataFrame({"source_id": pd.Series(dtype="int64")})
    n = len(stars)
    extra = pd.DataFrame(index=range(n))
    if method == "thesis":
        for c in THESIS_EXTRA:
            extra[c] = np.zeros(n, bool) if c.endswith("member") else np.full(n, -1, np.int64)
    members = _members_table(stars.reset_index(drop=True), np.zeros(n), np.zeros(n, bool),
                             np.full(n, -1, np.int64), extra)
    params = cluster_parameters(stars, np.zeros(n, bool)) if n else {"n_members": 0}
    summary: dict[str, Any] = {"status": "skipped", "reason": reason, "method": method,
                               "n_stars": n, "n_members": 0}
    for key in ("pmra", "pmra_error", "pmdec", "pmdec_error", "parallax", "parallax_error", "ra",
                "dec", "r50_deg"):
        summary[key] = None
    summary.update({"seeds": [], "seed_jaccard": None, "seed_jaccard_min": None, "runtime_s": 0.0,
                    "parameters": params, "stages": {}})
    write_outputs(out_dir, members, summary, None,
                  pd.DataFrame(columns=["k", "silhouette"]) if method == "thesis" else None)
    return summary


def _json_safe(obj: Any) -> Any:
    """NaN and infinities become null (strict JSON); numpy scalars become plain numbers."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_json_safe(v) for v in obj.tolist()]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj
