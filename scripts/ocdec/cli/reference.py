"""``ocdec reference``: reference mean proper motion and parallax of one cluster (SIMBAD, the
offline table, published cluster tables), written as JSON and printed as a table."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ocdec.io import check_writable
from ocdec.results.reference import (
    REFERENCE_KEYS,
    display_name,
    load_reference_table,
    read_cluster_table,
    region_references,
    write_references,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reference",
        help="reference pm and parallax of a cluster (SIMBAD, offline table, published tables)",
        description=(
            "Look up a cluster's mean proper motion and parallax with errors: SIMBAD through "
            "astroquery (aliases such as Melotte 22 = M 45 resolved in one request, retried, "
            "cached in the output file), an offline reference table, and published cluster "
            "tables (Cantat-Gaudin 2018/2020, Hunt & Reffert 2023 VizieR exports)."
        ),
    )
    parser.add_argument("region", help="region id or cluster name, e.g. NGC_2632 or 'Melotte 22'")
    parser.add_argument("--name", help="name to look up (default: the region id with spaces)")
    parser.add_argument("--out", help="output JSON (default resources/reference/{region}.json)")
    parser.add_argument(
        "--no-simbad",
        dest="simbad",
        action="store_false",
        help="offline: use only the reference table and cluster tables",
    )
    parser.add_argument("--table", help="offline reference TSV (e.g. config/references.tsv)")
    parser.add_argument(
        "--cluster-table",
        action="append",
        default=[],
        metavar="PATH[=LABEL]",
        help="published cluster table to add (repeatable); LABEL e.g. CG2018",
    )
    parser.add_argument("--retries", type=int, default=3, help="retries of a failed SIMBAD request")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per SIMBAD request")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    region_id = args.region.strip().replace(" ", "_")
    name = args.name or display_name(args.region)
    out = Path(args.out) if args.out else Path("resources") / "reference" / f"{region_id}.json"
    check_writable(out, "--out")
    table = load_reference_table(args.table) if args.table else None
    clusters = []
    for spec in args.cluster_table:
        path, _, label = spec.partition("=")
        clusters.append(read_cluster_table(path, label or None))
    rows = region_references(
        region_id,
        name,
        simbad=args.simbad,
        simbad_cache=out if args.simbad else None,
        reference_table=table,
        cluster_tables=clusters,
        retries=args.retries,
        timeout_s=args.timeout,
    )
    write_references(out, region_id, name, rows)
    print(f"{name} ({region_id}) -> {out}")
    print("\t".join(REFERENCE_KEYS))
    for row in rows:
        cells = [row["source"]] + [
            "" if not math.isfinite(row[k]) else f"{row[k]:g}" for k in REFERENCE_KEYS[1:]
        ]
        print("\t".join(cells))
    if not rows:
        print("no reference values found", file=sys.stderr)
        return 1
    return 0
