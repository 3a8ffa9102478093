"""Scores of a membership against a published member list: precision, recall, F1, mean offsets.

Stars are matched by ``source_id`` where the two share ids, else by position within 1 arcsec
(astropy ``match_to_catalog_sky``; Gaia ids changed between DR2 and DR3). Only the published stars
that are in the characterized field count (a list often covers a larger area than one cone), and
both sides are restricted to the list's magnitude range (G <= 18 for Cantat-Gaudin et al. 2018).

A star listed twice would be counted twice: exact repeats (in the members or the published list)
are dropped with a warning, two different rows with the same id are refused. A list with no rows,
or with text in its probability column, is refused rather than scored. A list none of whose
members lies in the field (another cluster's, or the wrong field) is scored with a warning (recall
NaN); ``ocdec validate`` refuses it.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ocdec.data.columns import drop_duplicate_stars
from ocdec.errors import OcdecError

log = logging.getLogger(__name__)

# Published-list column names (VizieR, CG2018 per-cluster extracts, Gaia Coll. 2018) -> ours.
_ALIASES = {
    "source_id": ("source_id", "Source", "source", "GaiaDR2", "GaiaEDR3", "GaiaDR3", "DR2Name",
                  "DR3Name"),
    "ra": ("ra", "RA_ICRS", "RAdeg", "RA", "_RAJ2000"),
    "dec": ("dec", "DE_ICRS", "DEdeg", "DEC", "Dec", "_DEJ2000"),
    "phot_g_mean_mag": ("phot_g_mean_mag", "Gmag", "G"),
    "prob": ("PMemb", "proba", "probs", "Prob", "prob", "p_member"),
    "cluster": ("Cluster", "cluster"),
    "pmra": ("pmra", "pmRA"),
    "pmdec": ("pmdec", "pmDE"),
    "parallax": ("parallax", "plx", "Plx"),
}
MATCH_RADIUS_ARCSEC = 1.0


def read_published(path: str | os.PathLike[str], cluster: str | None = None) -> pd.DataFrame:
    """A published member list as a frame with ``source_id`` (Int64), ``ra``, ``dec``,
    ``phot_g_mean_mag``, ``prob`` (1 where the list has none) and ``cluster`` where present.

    Reads CSV, VizieR TSV ('|' or tab separated, '#' comments, a unit and a dashes line) and
    whitespace-separated ``.dat``. ``cluster`` keeps only rows whose Cluster column matches
    (case-insensitive, spaces and underscores ignored, so "NGC 6774" finds "NGC6774").
    """
    path = Path(path)
    if not path.is_file():
        raise OcdecError(f"{path}: published member list not found")
    try:
        raw = _read_table(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise OcdecError(f"{path}: cannot read as a member list ({err})") from err
    raw.columns = [str(c).strip() for c in raw.columns]
    if raw.empty:
        raise OcdecError(f"{path}: the published member list has a header but no rows")
    out = pd.DataFrame(index=raw.index)
    for canonical, names in _ALIASES.items():
        name = next((n for n in names if n in raw.columns), None)
        if name is None:
            continue
        col = raw[name]
        if canonical in ("cluster",):
            out[canonical] = col.astype(str).str.strip()
        elif canonical == "source_id":
            out[canonical] = pd.to_numeric(col.astype(str).str.strip().str.replace(
                r"^Gaia (E?DR\d) ", "", regex=True), errors="coerce").astype("Int64")
        else:
            out[canonical] = pd.to_numeric(col, errors="coerce")
            if canonical == "prob":
                _check_numeric(col, out[canonical], path, name)
    if "source_id" not in out and not {"ra", "dec"} <= set(out.columns):
        raise OcdecError(f"{path}: needs a source id column (source_id/Source) or RA/Dec columns")
    if "prob" not in out:
        out["prob"] = 1.0
    if cluster is not None:
        if "cluster" not in out:
            raise OcdecError(f"{path}: no Cluster column to select {cluster!r} from")
        key = _cluster_key(cluster)
        out = out[out["cluster"].map(_cluster_key) == key]
        if out.empty:
            raise OcdecError(f"{path}: no rows with Cluster {cluster!r}")
    return _drop_repeats(out.reset_index(drop=True), str(path))


def _check_numeric(raw: pd.Series, numbers: pd.Series, path: Path, name: str) -> None:
    """Text where a number belongs (other than an empty cell) is an error naming the row."""
    text = raw.astype("string").str.strip()
    bad = (numbers.isna() & text.notna() & (text != "")).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise OcdecError(f"{path}: column {name!r} row {row}: {raw.iloc[row]!r} is not a number "
                         f"({int(bad.sum())} such row(s))")


def _drop_repeats(published: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Exact repeats dropped with a warning; one id on two different rows refused."""
    if "source_id" in published and published["source_id"].notna().any():
        with_id = published[published["source_id"].notna()]
        without = published[published["source_id"].isna()]
        kept = drop_duplicate_stars(with_id.reset_index(drop=True), origin)
        return pd.concat([kept, without], ignore_index=True) if len(without) else kept
    exact = published.duplicated()
    if exact.any():
        log.warning("%s: dropped %d exact duplicate row(s)", origin, int(exact.sum()))
    return published[~exact].reset_index(drop=True)


def _cluster_key(name: str) -> str:
    return str(name).replace(" ", "").replace("_", "").lower()


def _read_table(path: Path) -> pd.DataFrame:
    opener_text = _head(path)
    lines = [ln for ln in opener_text.splitlines() if ln.strip() and not ln.startswith("#")]
    header = lines[0] if lines else ""
    if "|" in header:
        frame = pd.read_csv(path, sep="|", comment="#", skip_blank_lines=True, dtype=str)
        # VizieR: a unit line and a dashes line follow the header.
        frame = frame[~frame.iloc[:, 0].astype(str).str.match(r"^\s*(-+|deg|[a-z/ ]*)\s*$")]
        return frame
    if "\t" in header:
        frame = pd.read_csv(path, sep="\t", comment="#", dtype=str)
        return frame[~frame.iloc[:, 0].astype(str).str.match(r"^\s*(-+|deg)?\s*$")]
    if "," in header:
        return pd.read_csv(path, dtype={"Source": str, "source_id": str})
    return pd.read_csv(path, sep=r"\s+", comment="#", dtype=str)


def _head(path: Path, n: int = 65536) -> str:
    import gzip

    with open(path, "rb") as fh:
        magic = fh.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    with opener(path, "rb") as fh:
        return fh.read(n).decode("utf-8", errors="replace")


def match_published(members: pd.DataFrame, published: pd.DataFrame, how: str = "auto"
                    ) -> tuple[np.ndarray, str]:
    """For each published star, the row of ``members`` it is (-1 where it is not in the field)."""
    if how not in ("auto", "id", "position"):
        raise OcdecError(f"match must be auto, id or position, got {how!r}")
    by_id = np.full(len(published), -1)
    if "source_id" in published and "source_id" in members:
        lookup = pd.Series(np.arange(len(members)), index=members["source_id"].to_numpy())
        lookup = lookup[~lookup.index.duplicated()]
        ids = published["source_id"]
        ok = ids.notna().to_numpy()
        found = lookup.reindex(ids[ok].to_numpy().astype(np.int64))
        by_id[np.flatnonzero(ok)] = found.fillna(-1).to_numpy(dtype=int)
    if how == "id" or (how == "auto" and (by_id >= 0).any()):
        return by_id, "source_id"
    has_pos = {"ra", "dec"} <= set(published.columns) and {"ra", "dec"} <= set(members.columns)
    if not has_pos or not np.isfinite(members["ra"].to_numpy(dtype=float)).any():
        if how == "position":
            raise OcdecError("position match needs ra/dec in both the members and the list")
        return by_id, "source_id"
    return _match_positions(members, published), "position"


def _match_positions(members: pd.DataFrame, published: pd.DataFrame) -> np.ndarray:
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    out = np.full(len(published), -1)
    m_ok = np.isfinite(members["ra"].to_numpy(float)) & np.isfinite(members["dec"].to_numpy(float))
    p_ok = (np.isfinite(published["ra"].to_numpy(float))
            & np.isfinite(published["dec"].to_numpy(float)))
    if not m_ok.any() or not p_ok.any():
        return out
    mi = np.flatnonzero(m_ok)
    ours = SkyCoord(members["ra"].to_numpy(float)[mi] * u.deg,
                    members["dec"].to_numpy(float)[mi] * u.deg)
    pi = np.flatnonzero(p_ok)
    theirs = SkyCoord(published["ra"].to_numpy(float)[pi] * u.deg,
                      published["dec"].to_numpy(float)[pi] * u.deg)
    idx, sep, _ = theirs.match_to_catalog_sky(ours)
    good = sep.arcsec <= MATCH_RADIUS_ARCSEC
    out[pi[good]] = mi[idx[good]]
    return out


def score_members(members: pd.DataFrame, published: pd.DataFrame, *, min_prob: float = 0.5,
                  published_min_prob: float = 0.5, g_max: float | None = 18.0,
                  match: str = "auto") -> dict[str, Any]:
    """Precision, recall, F1 of ``members`` (p_member >= min_prob) against the published members
    (prob >= published_min_prob) that lie in the field, both with G <= g_max; mean offsets (ours
    minus published, the published members' astrometry taken from the same field table) of pmra,
    pmdec and parallax, both sides in the magnitude range (``offset_*``) and both sides over all
    magnitudes (``offset_*_all``)."""
    if "p_member" not in members:
        raise OcdecError("members table has no p_member column")
    members = drop_duplicate_stars(members.reset_index(drop=True), "members table")
    if not 0 <= min_prob <= 1:
        raise OcdecError(f"min-prob must be within [0, 1], got {min_prob}")
    pub = published[published["prob"].fillna(1.0) >= published_min_prob].reset_index(drop=True)
    rows, how = match_published(members, pub, match)
    if not len(pub):
        log.warning("none of the %d published stars has probability >= %g: nothing to score",
                    len(published), published_min_prob)
    elif not (rows >= 0).any():
        log.warning("none of the %d published members lies in the field (matched by %s): the "
                    "list is probably for another cluster, or the field is wrong", len(pub),
                    "source_id" if how == "source_id" else "position within 1 arcsec")
    g = (members["phot_g_mean_mag"].to_numpy(float) if "phot_g_mean_mag" in members
         else np.full(len(members), np.nan))
    in_range = np.ones(len(members), bool) if g_max is None else ~(g > g_max)  # NaN G counts
    ours_all = members["p_member"].to_numpy(float) >= min_prob
    ours = ours_all & in_range
    truth = np.zeros(len(members), bool)
    truth[rows[rows >= 0]] = True
    truth &= in_range
    tp = int((ours & truth).sum())
    n_ours, n_truth = int(ours.sum()), int(truth.sum())
    precision = tp / n_ours if n_ours else math.nan
    recall = tp / n_truth if n_truth else math.nan
    f1 = 2 * tp / (n_ours + n_truth) if n_ours + n_truth else math.nan
    out: dict[str, Any] = {
        "match": how, "min_prob": min_prob, "g_max": g_max,
        "n_published": int(len(pub)), "n_published_in_field": int((rows >= 0).sum()),
        "n_truth": n_truth, "n_members": n_ours, "n_members_all": int(ours_all.sum()),
        "true_positives": tp, "precision": precision, "recall": recall, "f1": f1,
    }
    truth_all = np.zeros(len(members), bool)
    truth_all[rows[rows >= 0]] = True
    for col in ("pmra", "pmdec", "parallax"):
        if col not in members:
            continue
        v = members[col].to_numpy(float)
        # Like for like: both sides over the scored magnitude range (the headline offsets), and
        # both sides over all magnitudes (``_all``).
        ref = np.nanmean(v[truth]) if truth.any() else math.nan
        ref_all = np.nanmean(v[truth_all]) if truth_all.any() else math.nan
        out[f"published_{col}"] = ref
        out[f"offset_{col}"] = (np.nanmean(v[ours]) - ref) if ours.any() else math.nan
        out[f"offset_{col}_all"] = (np.nanmean(v[ours_all]) - ref_all) if ours_all.any() \
            else math.nan
    log.info("validate (%s match): %d published in field, %d ours, P %.3f R %.3f F1 %.3f", how,
             n_truth, n_ours, precision, recall, f1)
    return out
