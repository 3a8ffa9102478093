"""What the region figures read, and nothing that draws (no matplotlib at import): the members
tables with just the columns the figures use, each method's selections, and the rest of a
region's products (summaries, training histories, the silhouette sweep, why a region has no
result). The drawing is :mod:`ocdec.results.figures`.

Methods are known only through :mod:`ocdec.methods.registry` and file names only through
:mod:`ocdec.products`.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ocdec.errors import OcdecError
from ocdec.methods.registry import PRIMARY, REGISTRY
from ocdec.products import MethodProducts
from ocdec.verdict import FOUND

STAR_COLUMNS = ("ra", "dec", "pmra", "pmdec", "parallax", "phot_g_mean_mag", "bp_rp")


@dataclass
class Selection:
    """One method's result over a star table: which stars are members and which group each is in."""

    label: str
    stars: pd.DataFrame
    member: np.ndarray
    group: np.ndarray | None = None
    note: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_members(self) -> int:
        return int(np.count_nonzero(self.member))


def read_members(path: str | Path, extra: Sequence[str] = ()) -> pd.DataFrame:
    """members.parquet with just the columns the figures use (``extra``: a method's own
    selection columns)."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        names = set(pq.read_schema(path).names)
    except (OSError, Exception) as err:  # pyarrow raises its own error types
        raise OcdecError(f"{path}: cannot read members table: {err}") from err
    if "member" not in names:
        raise OcdecError(f"{path}: members table has no 'member' column")
    wanted = dict.fromkeys(("member", "group", "p_member", *STAR_COLUMNS, *extra))
    return pd.read_parquet(path, columns=[c for c in wanted if c in names])


def method_selections(
    results: Mapping[str, tuple[pd.DataFrame | None, Mapping[str, Any] | None]],
) -> list[Selection]:
    """Every selection of each method in ``results`` ({method: (members, summary)}), in registry
    order (the thesis's K-Means, DEC, DEC filtered, then the default, ...); a method whose
    members table is absent is left out."""
    out: list[Selection] = []
    for name, spec in REGISTRY.items():
        members, summary = results.get(name, (None, None))
        if members is None:
            continue
        summary = dict(summary or {})
        for sel in spec.selections:
            if sel.member not in members:
                continue
            groups = members[sel.group].to_numpy() if sel.group in members else None
            params = (summary.get("selections") or {}).get(sel.key) or {} if sel.key else summary
            note = sel.note.format(**summary) if sel.note and _has_keys(sel.note, summary) else ""
            out.append(Selection(spec.selection_label(sel), members,
                                 members[sel.member].to_numpy(dtype=bool), groups, note, params))
    return out


def _has_keys(template: str, values: Mapping[str, Any]) -> bool:
    return all(f in values for _, f, _, _ in string.Formatter().parse(template) if f)


@dataclass
class RegionInputs:
    """What a region's figures show, read from its products. ``skip`` is (status, reason) where
    the region has no result to draw (then nothing else is read)."""

    skip: tuple[str, str] | None = None
    selections: list[Selection] = field(default_factory=list)
    silhouette: pd.DataFrame | None = None
    chosen_k: int | None = None
    histories: dict[str, pd.DataFrame | None] = field(default_factory=dict)
    # groups.tsv of the primary method (else the first method run) and its summary.json: the
    # groups figure, drawn for found and not-found regions alike
    groups: pd.DataFrame | None = None
    groups_summary: Mapping[str, Any] | None = None


def read_region(
    method_dirs: Mapping[str, str | Path | None], status: Mapping[str, Any] | None = None
) -> RegionInputs:
    """Read a region's products: ``method_dirs`` maps each method run to its folder of
    characterize outputs (absent or None: not run), ``status`` is the region's status.json."""
    found = {m: MethodProducts(d, REGISTRY[m].tables) for m, d in method_dirs.items() if d}
    summaries = {m: p.summary for m, p in found.items()}
    reason = skip_reason(status, found, summaries)
    order = sorted(found, key=lambda m: m != PRIMARY)
    owner = next((m for m in order if found[m].exists("groups")), None)
    groups = found[owner].table("groups") if owner else None
    groups_summary = summaries[owner] if owner else None
    if reason is not None:
        return RegionInputs(skip=reason, groups=groups, groups_summary=groups_summary)
    results = {m: (_members_if(m, p, summaries[m]), summaries[m]) for m, p in found.items()}
    # the silhouette sweep of the first method that has one (thesis mode)
    sweep, sweep_summary = next(((p.table("silhouette"), summaries[m]) for m, p in found.items()
                                 if "silhouette" in p.files), (None, None))
    chosen = (sweep_summary or {}).get("kmeans_k")
    histories = {m: p.table("history") for m, p in found.items()}
    return RegionInputs(
        selections=method_selections(results),
        silhouette=sweep,
        chosen_k=int(chosen) if chosen else None,
        histories={m: histories[m] for m in REGISTRY if m in histories},  # registry order
        groups=groups,
        groups_summary=groups_summary,
    )


def _members_if(
    method: str, found: MethodProducts, summary: Mapping[str, Any] | None
) -> pd.DataFrame | None:
    """A found cluster's members table (with its own selection columns), else None."""
    if summary is not None and summary.get("status", FOUND) != FOUND:
        return None
    if not found.exists("members"):
        return None
    extra = [c for s in REGISTRY[method].selections for c in (s.member, s.group) if c]
    return read_members(found.files["members"], extra)


def skip_reason(
    status: Mapping[str, Any] | None,
    found: Mapping[str, MethodProducts],
    summaries: Mapping[str, Mapping[str, Any] | None],
) -> tuple[str, str] | None:
    """(status, reason) where the region has no members to draw: the quality gate skipped it,
    no method that ran found the cluster (not_found, the primary's reason first), or none wrote
    members; None where there is a cluster."""
    if status is not None and status.get("status", "ok") != "ok":
        return str(status.get("status")), str(status.get("reason") or "")
    present = [summaries[m] for m in sorted(summaries, key=lambda m: m != PRIMARY)
               if summaries[m] is not None]
    if present and all(s.get("status", FOUND) != FOUND for s in present):
        s = present[0]
        return str(s.get("status")), str(s.get("reason") or "")
    if found and not any(p.exists("members") for p in found.values()):
        return "failed", "no members table was produced"
    return None
