"""Run the default method over the shared catalogue sample and score it against Hunt & Reffert 2023.

Each of the 46 cluster fields (plus the 5 empty fields and the Orion field) of
``DATA/fields/catalogue_sample`` (``--data DATA``, default ``../shared/data`` beside the
repository) is run with only its Dias et al. (2002) entry as priors
(centre, radius, proper motion and distance where the catalogue has them). A cluster counts as
correct when the found means are within max(0.3 mas/yr, the HR2023 members' pm spread) and
max(0.07 mas, their parallax spread) of Hunt & Reffert (2023); "wrong" when the method returned a
cluster elsewhere. Writes one TSV row per field and prints the counts.

    python scripts/validate_sample.py --out sample.tsv [--dec] [--jobs 2] [--only ber29,NGC2204]
        [--data /path/to/shared/data]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"  # the default of --data
# Where each input lies under the shared data folder.
SAMPLE_DIR = Path("fields") / "catalogue_sample"
DIAS_DIR = Path("openclust_dias2002")
HUNT_FILE = Path("cluster_tables") / "ucc_curated" / "HUNT2023.csv"
SAMPLE = DATA / SAMPLE_DIR
DIAS = DATA / DIAS_DIR
HUNT = DATA / HUNT_FILE

# MANIFEST names the Dias catalogue spells differently (keys: name_key of the MANIFEST name).
DIAS_ALIASES = {
    "BER25": "Berkeley 25", "BER29": "Berkeley 29", "BER73": "Berkeley 73",
    "BER76": "Berkeley 76", "ARPMADORE2": "Arp Madore 2", "VDBERGHHAGEN4": "BH 4",
    "ESO964": "BH 144", "ORION": "Trapezium", "ONCNGC1977NGC1981": "Trapezium",
    "FSR1212": "FSR 1212",  # not in B/ocl v3.5: centre from the field, no other prior
}
# HR2023 names for the same MANIFEST names where the key does not match directly.
HUNT_ALIASES = {"BER25": "Berkeley 25", "BER29": "Berkeley 29", "BER73": "Berkeley 73",
                "BER76": "Berkeley 76", "VDBERGHHAGEN4": "BH 4", "ESO964": "ESO 96-4",
                "ARPMADORE2": "Arp-Madore 2"}
# The Orion field holds three clusters; finding any of them is correct.
MULTI_TARGETS = ("ONC", "NGC 1977", "NGC 1981")


def dias_regions(data: Path = DATA) -> pd.DataFrame:
    from ocdec.data.catalogue import read_dias_catalogue, regions_from_catalogue
    from ocdec.results.reference_rows import name_key

    regions = regions_from_catalogue(read_dias_catalogue(data / DIAS_DIR),
                                     min_diameter_arcmin=0.0)
    regions["key"] = [name_key(n) for n in regions["name"]]
    return regions


def hunt_table(data: Path = DATA) -> pd.DataFrame:
    from ocdec.results.cluster_tables import read_cluster_table

    table = read_cluster_table(data / HUNT_FILE, "HR2023")
    raw = pd.read_csv(data / HUNT_FILE)
    if len(raw) != len(table):
        raise RuntimeError("HR2023 table rows do not line up with its raw CSV")
    for col in ("s_pmRA", "s_pmDE", "s_Plx"):
        table[col] = pd.to_numeric(raw[col], errors="coerce").to_numpy()
    return table


def _lookup(table: pd.DataFrame, names: list[str]) -> dict[str, Any] | None:
    from ocdec.results.reference_rows import name_key

    for name in names:
        key = name_key(name)
        hit = table[table["key"] == key]
        if hit.empty:
            hit = table[table["aliases"].map(lambda s, k=key: k in s)]
        if not hit.empty:
            return hit.iloc[0].to_dict()
    return None


def priors_for(name: str, regions: pd.DataFrame, stars: pd.DataFrame) -> tuple[Any, str]:
    """The Dias entry's priors (and the Dias name used); the field centre where Dias lacks it."""
    from ocdec.methods.priors import ClusterPriors
    from ocdec.results.reference_rows import name_key

    if not name:
        return ClusterPriors(), ""
    key = name_key(name)
    dias_name = DIAS_ALIASES.get(key, name)
    hit = regions[regions["key"] == name_key(dias_name)]
    if hit.empty:
        ra, dec = float(np.nanmedian(stars["ra"])), float(np.nanmedian(stars["dec"]))
        return ClusterPriors(ra=ra, dec=dec), "(not in Dias: field centre)"
    return ClusterPriors.from_region(hit.iloc[0].to_dict()), str(hit.iloc[0]["name"])


def overrides(pairs: list[str]) -> dict[str, Any]:
    """``--set`` KEY=VALUE pairs as the default method's settings (``characterize.default`` of
    the config: dotted keys nest, values are YAML), e.g. groups.n_resamples=2."""
    import yaml

    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set {pair!r}: give KEY=VALUE, e.g. groups.n_resamples=2")
        *path, last = key.strip().split(".")
        if key.strip() == "run_dec":  # --dec says it; a --set would be overridden silently
            raise SystemExit("--set run_dec: use --dec (DEC on) or leave it out (off)")
        node = settings
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return settings


def check_data(data: Path) -> str | None:
    """Why ``data`` cannot serve as the shared data folder (one line naming the missing path), or
    None where it holds the sample, the Dias catalogue and the HR2023 table."""
    if not data.is_dir():
        return f"--data {data}: no such directory (the shared data folder)"
    for part in (SAMPLE_DIR / "MANIFEST.tsv", DIAS_DIR, HUNT_FILE):
        if not (data / part).exists():
            return f"--data {data}: no {part} there (is it the shared data folder?)"
    return None


def run_field(task: tuple[str, str, str, bool, dict[str, Any], Path]) -> dict[str, Any]:
    from ocdec.characterize import find_members, judge, method_settings
    from ocdec.data.columns import read_stars
    from ocdec.errors import OcdecError

    file, kind, name, run_dec, extra, data = task
    logging.disable(logging.WARNING)
    stars = read_stars(data / SAMPLE_DIR / file).reset_index(drop=True)
    priors, dias_name = priors_for(name, dias_regions(data), stars)
    settings = method_settings("default", {"default": {**extra, "run_dec": run_dec}})
    row: dict[str, Any] = {"file": file, "kind": kind, "cluster": name, "dias": dias_name,
                           "n_stars": len(stars)}
    start = time.perf_counter()
    try:
        result = find_members(stars, priors=priors, settings=settings, n_seeds=3)
    except OcdecError as exc:
        row.update(status="error", reason=str(exc)[:120])
    else:
        # the verdict the workflow gives (ocdec.characterize.judge): tension and false alarms
        result, _, verdict = judge(stars, result, priors)
        diag = result.summary.get("diagnostics", {})
        row.update(status=verdict["status"], reason=str(verdict.get("reason", ""))[:120],
                   false_alarm_probability=verdict.get("false_alarm_probability"),
                   p_sum=float(result.p_member.sum()))
        if verdict["status"] == "found":
            p = result.parameters
            peak = result.summary.get("peak") or {}
            model = result.summary.get("model") or {}
            row.update(n_members=int(p["n_members"]), pmra=p["pmra"],
                       pmdec=p["pmdec"], parallax=p["parallax"],
                       model_pmra=model.get("pmra"), model_pmdec=model.get("pmdec"),
                       model_parallax=model.get("parallax"),
                       significance=peak.get("significance"), score=peak.get("score"),
                       concentration=peak.get("concentration"),
                       expected=diag.get("expected_members"),
                       below_field_limit=diag.get("below_field_limit"),
                       bootstrap_cv=diag.get("bootstrap_count_cv"),
                       bootstrap_jaccard=diag.get("bootstrap_jaccard"),
                       dec_jaccard=diag.get("dec_jaccard_with_mixture"),
                       membership_drift=diag.get("membership_drift"),
                       dec_rejected=bool(diag.get("dec_rejected")))
    row["runtime_s"] = round(time.perf_counter() - start, 2)
    return row


def score(row: dict[str, Any], hunt: pd.DataFrame) -> dict[str, Any]:
    from ocdec.results.reference_rows import name_key

    names = list(MULTI_TARGETS) if row["kind"] == "multi" else [row["cluster"]]
    if row["kind"] == "multi":
        refs = [r for r in (_lookup(hunt, [n]) for n in names) if r is not None]
    else:
        key = name_key(row["cluster"]) if row["cluster"] else ""
        ref = _lookup(hunt, [HUNT_ALIASES.get(key, row["cluster"])]) if key else None
        refs = [ref] if ref is not None else []
    row["verdict"] = "not_found" if row["status"] != "found" else "found"
    if row["kind"] == "empty":
        row["verdict"] = "false_detection" if row["status"] == "found" else "correct_empty"
        return row
    if not refs:
        row["verdict"] = "no_reference"
        return row
    best = None
    for ref in refs:
        tol_pm = max(0.3, float(np.nan_to_num(math.hypot(ref["s_pmRA"], ref["s_pmDE"])
                                              / math.sqrt(2), nan=0.0)))
        tol_plx = max(0.07, float(np.nan_to_num(ref["s_Plx"], nan=0.0)))
        if row["status"] != "found":
            best = best or (ref, tol_pm, tol_plx, math.inf, math.inf)
            continue
        dpm = math.hypot(row["pmra"] - ref["pmra"], row["pmdec"] - ref["pmdec"])
        dplx = abs(row["parallax"] - ref["parallax"])
        if best is None or dpm / tol_pm + dplx / tol_plx < best[3] / best[1] + best[4] / best[2]:
            best = (ref, tol_pm, tol_plx, dpm, dplx)
    assert best is not None
    ref, tol_pm, tol_plx, dpm, dplx = best
    row.update(ref_name=ref["name"], ref_pmra=ref["pmra"], ref_pmdec=ref["pmdec"],
               ref_parallax=ref["parallax"], ref_n=ref["n_stars"], tol_pm=tol_pm,
               tol_plx=tol_plx, d_pm=dpm, d_plx=dplx)
    if row["status"] == "found":
        row["verdict"] = "correct" if dpm <= tol_pm and dplx <= tol_plx else "wrong"
        # the mixture's deconvolved centre (errors weighed in; local frame = ICRS at the centre)
        mpm = math.hypot(row["model_pmra"] - ref["pmra"], row["model_pmdec"] - ref["pmdec"])
        mplx = abs(row["model_parallax"] - ref["parallax"])
        row["model_verdict"] = "correct" if mpm <= tol_pm and mplx <= tol_plx else "wrong"
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="validate_sample.tsv")
    parser.add_argument("--dec", action="store_true", help="full method (DEC); default: mixture")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated parts of file names")
    parser.add_argument("--data", default=str(DATA), metavar="DIR",
                        help="the shared data folder: fields/catalogue_sample, "
                             "openclust_dias2002, cluster_tables (default: ../shared/data beside "
                             "the repository, %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a default-method setting (characterize.default's keys, dotted), "
                             "e.g. groups.n_resamples=2; repeatable")
    args = parser.parse_args(argv)
    extra = overrides(args.set)
    data = Path(args.data)
    problem = check_data(data)
    if problem:
        print(f"validate_sample.py: error: {problem}", file=sys.stderr)
        return 2
    manifest = pd.read_csv(data / SAMPLE_DIR / "MANIFEST.tsv", sep="\t").fillna("")
    if args.only:
        parts = args.only.split(",")
        manifest = manifest[manifest["file"].map(lambda f: any(p in f for p in parts))]
    tasks = [(r.file, r.kind, r.cluster, args.dec, extra, data) for r in manifest.itertuples()]
    with ProcessPoolExecutor(max_workers=min(args.jobs, 2)) as pool:
        rows = list(pool.map(run_field, tasks))
    hunt = hunt_table(data)
    table = pd.DataFrame([score(r, hunt) for r in rows])
    table.to_csv(args.out, sep="\t", index=False, float_format="%.4g")
    counts = table.groupby("kind")["verdict"].value_counts()
    print(counts.to_string())
    clusters = table[table["kind"] == "cluster"]
    if "model_verdict" in clusters:
        print(f"with the mixture's deconvolved means: correct "
              f"{int((clusters['model_verdict'] == 'correct').sum())}, wrong "
              f"{int((clusters['model_verdict'] == 'wrong').sum())}")
    print(f"clusters correct {int((clusters['verdict'] == 'correct').sum())} of {len(clusters)}, "
          f"wrong {int((clusters['verdict'] == 'wrong').sum())}; "
          f"empty fields with a detection {int((table['verdict'] == 'false_detection').sum())}; "
          f"total {table['runtime_s'].sum():.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
