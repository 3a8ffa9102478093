"""Run a membership method on one region's star table and write its products.

``DIR/members.parquet`` (source_id, p_member, member, group, the method's own columns, then the
input canonical columns), ``DIR/summary.json``, ``DIR/history.tsv`` (training curve),
``DIR/groups.tsv`` (every significant group of the cone) and the method's own tables
(``DIR/{table}.tsv``, e.g. thesis mode's silhouette.tsv); names in :mod:`ocdec.products`.

Every run ends with a verdict (:mod:`ocdec.verdict`): summary.json ``status`` "found" or
"not_found" (with ``reason``), ``prior_tension`` and, where the method measures it,
``false_alarm_probability``. Not found is a result: the same files, no members. Any method of
:mod:`ocdec.methods.registry`; used by the command line, the Python API and the workflow.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ocdec import products
from ocdec.errors import OcdecError
from ocdec.io import write_json, write_parquet, write_tsv
from ocdec.methods.astrometry import cluster_parameters
from ocdec.methods.base import HISTORY_COLUMNS, MethodResult
from ocdec.methods.priors import ClusterPriors
from ocdec.methods.registry import get_method, method_spec

log = logging.getLogger(__name__)

N_SEEDS = 5
# summary.json keys every method's summary has at the top, from the selection's parameters.
SUMMARY_PARAMETERS = ("pmra", "pmra_error", "pmdec", "pmdec_error", "parallax", "parallax_error",
                      "ra", "dec", "r50_deg")


def method_settings(method: str, config: Mapping[str, Any] | None = None) -> Any:
    """A method's settings from a ``characterize`` config section: the method's defaults, its own
    sub-section (``config[method]``, nested ``dec:`` and the like) and the shared keys its settings
    class has (e.g. ``threshold``). Unknown keys are refused, naming them."""
    from ocdec.settings import apply_mapping

    config = config or {}
    runner = get_method(method)
    settings = apply_mapping(runner.default_settings(), config.get(method) or {},
                             f"characterize.{method}")
    fields = getattr(settings, "__dataclass_fields__", {})
    shared = {key: config[key] for key in method_spec(method).shared_settings
              if key in config and key in fields}
    return apply_mapping(settings, shared, "characterize")


def find_members(
    stars: pd.DataFrame,
    *,
    method: str = "default",
    priors: ClusterPriors | None = None,
    seed: int = 0,
    n_seeds: int = N_SEEDS,
    settings: Any = None,
) -> MethodResult:
    """Members of the catalogue's cluster among ``stars`` by ``method``, in memory (nothing is
    written). Seeds ``seed .. seed + n_seeds - 1`` (single-seed methods take the first);
    ``settings`` an instance of the method's settings class (None: its defaults)."""
    runner = get_method(method)
    if n_seeds < 1:
        raise OcdecError(f"need at least one seed, got {n_seeds}")
    _check_stars(stars)
    stars = stars.reset_index(drop=True)
    settings = settings if settings is not None else runner.default_settings()
    return runner.run(stars, priors or ClusterPriors(), settings,
                      tuple(range(seed, seed + n_seeds)))


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
    known: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """:func:`find_members`, the verdict, then write the products to ``out_dir``; returns the
    summary. ``known``: published clusters (:func:`ocdec.verdict.read_known`) that name the
    groups."""
    priors = priors or ClusterPriors()
    stars = stars.reset_index(drop=True)
    start = time.perf_counter()
    result = find_members(stars, method=method, priors=priors, seed=seed, n_seeds=n_seeds,
                          settings=settings)
    runtime = time.perf_counter() - start
    result, groups, verdict_keys = judge(stars, result, priors, known)
    params = result.parameters
    summary: dict[str, Any] = {"status": verdict_keys.pop("status"), "method": method,
                               "n_stars": int(len(stars)),
                               "n_members": int(np.count_nonzero(result.member))}
    for key in SUMMARY_PARAMETERS:
        summary[key] = _finite_or_none(params.get(key))
    summary.update(result.summary)
    summary.update(verdict_keys)
    summary["runtime_s"] = runtime
    summary["parameters"] = params
    summary["priors"] = {k: v for k, v in priors.__dict__.items() if v is not None}
    members = members_table(stars, result)
    write_outputs(out_dir, method, members, summary, result.history, result.tables, provenance,
                  groups)
    log.info("%s: %s; %d members of %d stars; pmra %.3f pmdec %.3f parallax %.4f; %d groups; "
             "%.1f s", method, summary["status"], summary["n_members"], summary["n_stars"],
             params.get("pmra", math.nan), params.get("pmdec", math.nan),
             params.get("parallax", math.nan), len(groups), runtime)
    return summary


def judge(stars: pd.DataFrame, result: MethodResult, priors: ClusterPriors,
          known: pd.DataFrame | None = None
          ) -> tuple[MethodResult, pd.DataFrame, dict[str, Any]]:
    """The verdict on a method's selection, for any method: its tension with the catalogue from
    the members' parameters, the method's false-alarm probability where it has one. Not found
    clears the members (p_member and member); the groups table gets ``known_as`` and ``target``.
    Returns the (possibly cleared) result, groups.tsv and the summary keys (status, reason,
    prior_tension, false_alarm_probability, n_unknown_groups: believable groups that
    are neither the target nor a published cluster; None without a published table).."""
    from dataclasses import replace

    from ocdec import verdict

    params = result.parameters
    n_members = int(np.count_nonzero(result.member))
    tension = verdict.prior_tension(priors, params.get("pmra"), params.get("pmdec"),
                                    params.get("parallax"), params.get("ra"), params.get("dec"),
                                    parallax_error=params.get("parallax_error"))
    fap = _finite_or_none(result.summary.get("false_alarm_probability"))
    status, reason = verdict.decide(n_members, tension, fap, result.summary.get("reason"))
    groups = (result.groups.copy() if result.groups is not None
              else _selection_group(params, n_members, tension, status))
    groups = groups.reindex(columns=list(verdict.GROUP_COLUMNS))
    if status != verdict.FOUND:
        groups["target"] = False
        if n_members:
            log.info("not found: %s", reason)
            n = len(result.member)
            result = replace(result, p_member=np.zeros(n), member=np.zeros(n, bool),
                             parameters=cluster_parameters(stars, np.zeros(n, bool)))
    groups["target"] = groups["target"].fillna(False).astype(bool)
    groups["compatible"] = groups["compatible"].astype("boolean")
    groups["known_as"] = verdict.known_as(groups, known, priors)
    believable = ~(pd.to_numeric(groups["false_alarm_probability"], errors="coerce")
                   > verdict.MAX_FALSE_ALARM)
    unknown = int((believable & ~groups["target"] & (groups["known_as"] == "")).sum())
    keys: dict[str, Any] = {"status": status, "prior_tension": tension,
                            "false_alarm_probability": fap,
                            "n_unknown_groups": unknown if known is not None else None}
    if reason:
        keys["reason"] = reason
    else:
        result.summary.pop("reason", None)
    return result, groups, keys


def _selection_group(params: Mapping[str, Any], n_members: int, tension: Mapping[str, Any],
                     status: str) -> pd.DataFrame:
    """groups.tsv of a method that lists no groups: its selection, where it has members."""
    from ocdec import verdict

    if not n_members:
        return pd.DataFrame(columns=list(verdict.GROUP_COLUMNS))
    std = [_finite_or_none(params.get(f"{c}_std")) for c in ("pmra", "pmdec", "parallax")]
    row = {"group": 0, **{c: params.get(c) for c in ("pmra", "pmdec", "parallax", "ra", "dec")},
           "n_members": n_members, "significance": math.nan, "false_alarm_probability": math.nan,
           "tension_centre": tension.get("centre"), "tension_pm": tension.get("pm"),
           "tension_parallax": tension.get("parallax"), "compatible": verdict.compatible(tension),
           "target": status == verdict.FOUND, "known_as": "",
           "pm_width": (math.hypot(std[0], std[1]) / math.sqrt(2)
                        if std[0] is not None and std[1] is not None else math.nan),
           "parallax_width": std[2] if std[2] is not None else math.nan}
    return pd.DataFrame([row], columns=list(verdict.GROUP_COLUMNS))


def characterize_region(
    stars_path: str | os.PathLike[str],
    status_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    method: str,
    region: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    jax_cache_dir: str | None = None,
    provenance: Mapping[str, Any] | None = None,
    known_tables: Any = None,
) -> dict[str, Any]:
    """One workflow job: the quality gate's star table and status.json in, ``method``'s products
    out; a region the gate skipped gets the same files marked skipped with the gate's reason.
    ``region`` is its regions-table row (centre, radius, priors), ``config`` the workflow's
    ``characterize`` section (seed, n_seeds, the method's settings), ``known_tables`` the published
cluster tables that name the groups (the config's ``reference.cluster_tables``)."""
    from ocdec.io import read_provenance
    from ocdec.products import read_json
    from ocdec.verdict import read_known

    status = read_json(status_path) or {}
    # Written by the quality rule in canonical columns (possibly empty when skipped).
    stars = pd.read_parquet(stars_path)
    if status.get("status") != "ok":
        return write_skipped(out_dir, method, stars,
                             str(status.get("reason") or status.get("status")))
    config = config or {}
    settings = method_settings(method, config)
    if method_spec(method).uses_jax:
        from ocdec.compilation_cache import enable_compilation_cache

        enable_compilation_cache(jax_cache_dir)
    return characterize(stars, out_dir, method=method, priors=ClusterPriors.from_region(region),
                        seed=int(config.get("seed", 0)),
                        n_seeds=int(config.get("n_seeds", N_SEEDS)),
                        settings=settings,
                        provenance={**read_provenance(stars_path), **(provenance or {})},
                        known=read_known(known_tables))


def _check_stars(stars: pd.DataFrame) -> None:
    """A missing parallax, pmra or pmdec column, or one without a finite value, refused in one
    line naming the input file (the quality gate's wording, :func:`require_astrometry`)."""
    from ocdec.data.quality import require_astrometry

    require_astrometry(stars)


def members_table(stars: pd.DataFrame, result: MethodResult) -> pd.DataFrame:
    """source_id, p_member, member, group, the method's own columns, then the star columns."""
    ids = (stars["source_id"].to_numpy() if "source_id" in stars
           else np.arange(len(stars), dtype=np.int64))
    head = pd.DataFrame({"source_id": ids, "p_member": np.asarray(result.p_member, float),
                         "member": np.asarray(result.member, bool),
                         "group": np.asarray(result.group, np.int64)})
    extra = result.columns if result.columns is not None else pd.DataFrame(index=stars.index)
    rest = stars.drop(columns=[c for c in ("source_id", "p_member", "member", "group")
                               if c in stars.columns])
    return pd.concat([head, extra.reset_index(drop=True), rest.reset_index(drop=True)], axis=1)


def _finite_or_none(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def write_outputs(out_dir: str | os.PathLike[str], method: str, members: pd.DataFrame,
                  summary: dict[str, Any], history: pd.DataFrame | None,
                  tables: Mapping[str, pd.DataFrame] | None = None,
                  provenance: dict[str, Any] | None = None,
                  groups: pd.DataFrame | None = None) -> None:
    """members.parquet, history.tsv, groups.tsv, the method's tables, and summary.json last: its
    presence says the rest is complete."""
    from ocdec.verdict import GROUP_COLUMNS

    spec = method_spec(method)
    files = products.method_files(spec.tables)
    out = Path(out_dir)
    write_parquet(out / files["members"], members,
                  {**(provenance or {}), "method": method, "product": "members"})
    hist = (history if history is not None else pd.DataFrame()).reindex(columns=HISTORY_COLUMNS)
    write_tsv(out / files["history"], hist)
    groups = groups if groups is not None else pd.DataFrame()
    write_tsv(out / files["groups"], groups.reindex(columns=list(GROUP_COLUMNS)))
    for name in spec.tables:
        table = (tables or {}).get(name)
        table = table if table is not None else pd.DataFrame()
        write_tsv(out / files[name], table.reindex(columns=list(spec.table_columns[name])))
    write_json(out / files["summary"], _json_safe(summary))


def write_skipped(out_dir: str | os.PathLike[str], method: str, stars: pd.DataFrame | None,
                  reason: str) -> dict[str, Any]:
    """The products of a region that was skipped upstream (too few usable stars): same files, no
    members, ``status`` "skipped" and the reason. Only the method's registry entry is read: its
    module (JAX, scikit-learn) is not imported."""
    stars = stars if stars is not None else pd.DataFrame({"source_id": pd.Series(dtype="int64")})
    stars = stars.reset_index(drop=True)
    n = len(stars)
    extra = pd.DataFrame(index=range(n))
    for col, dtype in method_spec(method).member_columns.items():
        extra[col] = np.zeros(n, bool) if dtype == "bool" else np.full(n, -1, np.int64)
    none = np.zeros(n, bool)
    params = cluster_parameters(stars, none) if n else {"n_members": 0}
    result = MethodResult(p_member=np.zeros(n), member=none, group=np.full(n, -1, np.int64),
                          parameters=params, columns=extra)
    summary: dict[str, Any] = {"status": "skipped", "reason": reason, "method": method,
                               "n_stars": n, "n_members": 0}
    summary.update({key: None for key in SUMMARY_PARAMETERS})
    summary.update({"seeds": [], "seed_jaccard": None, "seed_jaccard_min": None, "runtime_s": 0.0,
                    "parameters": params, "stages": {}})
    write_outputs(out_dir, method, members_table(stars, result), summary, None)
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


class _CallableModule(types.ModuleType):
    """This module, callable as its :func:`characterize`: importing a submodule binds its name in
    the package, so once anything has imported ``ocdec.characterize`` (``ocdec.find_members``
    does), ``ocdec.characterize`` is this module, not the API's function of the same name."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return characterize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
