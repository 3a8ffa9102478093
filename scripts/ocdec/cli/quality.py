"""``ocdec quality``: quality filter and star-count gate for one region's star table."""

from __future__ import annotations

import argparse
from pathlib import Path

from ocdec.data.columns import read_stars
from ocdec.data.quality import QualitySettings, apply_quality
from ocdec.io import check_writable, read_provenance, write_json, write_parquet


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = QualitySettings()
    parser = subparsers.add_parser(
        "quality",
        help="keep stars with complete astrometry and apply the star-count gate",
        description="Filter a star table (any format ocdec reads) and write the kept stars "
        "(Parquet) and a status record (JSON): 'ok', or 'skipped' when fewer than --min-stars "
        "stars are usable. A skipped region still gets both files.",
    )
    parser.add_argument("stars", help="input star table (Parquet, CSV, FITS, VOTable, ECSV)")
    parser.add_argument("--out", required=True, help="filtered star table to write (Parquet)")
    parser.add_argument("--status", required=True, help="status record to write (JSON)")
    parser.add_argument("--region", help="region id for the status record (default: input stem)")
    parser.add_argument(
        "--min-stars",
        type=int,
        default=defaults.min_stars,
        help="fewer usable stars than this marks the region skipped (default %(default)s)",
    )
    parser.add_argument("--ruwe-max", type=float, help="keep ruwe <= this (DR3)")
    parser.add_argument(
        "--parallax-over-error-min", type=float, help="keep parallax / parallax_error >= this"
    )
    parser.add_argument("--g-max", type=float, help="keep phot_g_mean_mag <= this")
    parser.add_argument(
        "--no-require-photometry",
        dest="require_photometry",
        action="store_false",
        help="do not require G and BP-RP",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = QualitySettings(
        min_stars=args.min_stars,
        ruwe_max=args.ruwe_max,
        parallax_over_error_min=args.parallax_over_error_min,
        g_max=args.g_max,
        require_photometry=args.require_photometry,
    )
    check_writable(args.out, "--out")
    check_writable(args.status, "--status")
    source = Path(args.stars)
    region = args.region or Path(source.name.removesuffix(".gz")).stem
    frame = read_stars(source)
    clean, status = apply_quality(frame, settings, region=region)
    provenance = read_provenance(source) if source.suffix.lower() == ".parquet" else {}
    if not provenance:
        provenance = {"source": "local", "path": str(source)}
    provenance.setdefault("source_id_is_row", bool(frame.attrs.get("source_id_is_row", False)))
    provenance["quality"] = status
    write_parquet(args.out, clean, provenance)
    write_json(args.status, status)
    return 0
