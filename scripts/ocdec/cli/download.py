"""``ocdec download``: fetch the Gaia stars of one cone into a Parquet file with provenance.

``ocdec download --check`` instead asks the archive once, with one cheap query, whether the table
and the columns exist (and the login works): run it once before a many-region download.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ocdec.cli.options import add_cone_options
from ocdec.data.gaia import (
    CREDENTIALS_ENV,
    DEFAULT_SERVER,
    GaiaSettings,
    check_query,
    download_cone,
)
from ocdec.errors import OcdecError

DEFAULTS = GaiaSettings()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download",
        help="download the Gaia stars of a cone (async TAP jobs, chunked, resumable)",
        description=(
            "Download every star of a Gaia gaia_source table inside a cone through the archive's "
            "TAP service (astroquery), in chunks that are kept as they finish so a rerun resumes. "
            "Writes the canonical columns to Parquet with the query in its metadata."
        ),
    )
    add_cone_options(parser, "cone centre RA (deg, ICRS, [0, 360)); required",
                     "cone centre Dec (deg, ICRS, [-90, 90]); required",
                     "cone radius (deg, > 0); required")
    parser.add_argument("--region", help="region id, e.g. NGC_2682; required")
    parser.add_argument(
        "--check", action="store_true",
        help="only check, with one cheap query, that the table and its columns exist (and the "
             "login works); no cone needed. With --out, write the check's record there (JSON)",
    )
    parser.add_argument("--release", default=DEFAULTS.release, help="dr2 or dr3 (default dr3)")
    parser.add_argument(
        "--out",
        help="output Parquet (default resources/gaia/{release}/{region}.parquet)",
    )
    parser.add_argument("--table", help="table to query (default: the release's gaia_source)")
    parser.add_argument("--server", default=DEFAULT_SERVER, help=f"TAP server ({DEFAULT_SERVER})")
    parser.add_argument(
        "--chunk-rows", type=int, default=DEFAULTS.chunk_rows,
        help=f"most rows fetched by one job (default {DEFAULTS.chunk_rows})",
    )
    parser.add_argument(
        "--credentials",
        help=f"file with user name and password on two lines (or ${CREDENTIALS_ENV})",
    )
    parser.add_argument("--timeout", type=float, default=DEFAULTS.timeout_s,
                        help=f"seconds before a silent connection is dropped "
                             f"(default {DEFAULTS.timeout_s:g})")
    parser.add_argument("--retries", type=int, default=DEFAULTS.retries,
                        help=f"retries of a failed request (default {DEFAULTS.retries})")
    parser.add_argument("--job-limit", type=float, default=DEFAULTS.job_limit_s,
                        help="seconds one archive job may take in all, retries included, before "
                             f"it is aborted (default {DEFAULTS.job_limit_s:g})")
    parser.add_argument("--lock-wait", type=float, default=DEFAULTS.lock_wait_s,
                        help="seconds to wait for another download of the same output to end "
                             f"(default {DEFAULTS.lock_wait_s:g}: stop at once)")
    parser.add_argument("--format", dest="output_format", default=DEFAULTS.output_format,
                        help="votable, votable_gzip or votable_plain (default votable)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = GaiaSettings(
        release=args.release,
        table=args.table,
        server=args.server,
        chunk_rows=args.chunk_rows,
        timeout_s=args.timeout,
        retries=args.retries,
        job_limit_s=args.job_limit,
        lock_wait_s=args.lock_wait,
        credentials_file=args.credentials,
        output_format=args.output_format,
    )
    if args.check:
        record = check_query(settings, out=args.out)
        print(f"{record['table']} on {record['server']}: table and columns found "
              f"({record['seconds']:.1f} s)")
        return 0
    absent = [f"--{name}" for name in ("ra", "dec", "radius", "region")
              if getattr(args, name) is None]
    if absent:
        raise OcdecError(f"{', '.join(absent)} required (or --check)")
    out = Path(args.out) if args.out else (
        Path("resources") / "gaia" / settings.release / f"{args.region}.parquet"
    )
    download_cone(settings, args.ra, args.dec, args.radius, out, region=args.region)
    return 0
