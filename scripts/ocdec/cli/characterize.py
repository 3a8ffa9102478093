"""``ocdec characterize FIELD --out DIR``: members and parameters of the cluster in one field."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ocdec.cli.options import add_cone_options
from ocdec.errors import OcdecError
from ocdec.methods.registry import method_names
from ocdec.products import TABLE_FORMATS

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "characterize", help="find the open cluster in one star file and write its members",
        description="Find the open cluster in FIELD (CSV, FITS, VOTable, ECSV or Parquet; Gaia "
        "archive or VizieR column names) and write DIR/members.parquet, DIR/summary.json, "
        "DIR/history.tsv and DIR/groups.tsv (and the method's own tables, e.g. thesis mode's "
        "DIR/silhouette.tsv); --format adds DIR/members.fits, .vot or .csv. summary.json says "
        "\"found\" or \"not_found\" (and why); both exit 0. A DIR an earlier run wrote to (it "
        "holds summary.json) keeps only this run's products: the members tables in formats "
        "not asked for this time and another method's tables, left there by the earlier run, "
        "are removed once this run has written its own (a run that fails leaves the earlier "
        "products as they were); FIELD itself and other files in DIR are not removed, and a "
        "FIELD saved in DIR under a product's name is refused.")
    p.add_argument("field", metavar="FIELD", help="star table")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    add_cone_options(p, "catalogue centre RA (deg, [0, 360))",
                     "catalogue centre Dec (deg, [-90, 90])", "catalogue cone radius (deg, > 0)")
    p.add_argument("--pm-prior", type=float, nargs=2, metavar=("PMRA", "PMDEC"),
                   help="catalogue proper motion (mas/yr), may be several mas/yr off")
    p.add_argument("--parallax-prior", type=float, metavar="PLX",
                   help="catalogue parallax (mas), e.g. 1000 / distance in pc")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--n-seeds", type=int, default=5,
                   help="seeds in the default method's ensemble (default 5)")
    p.add_argument("--method", choices=method_names(), default="default",
                   help="membership method (default: %(default)s)")
    p.add_argument("--settings", metavar="YAML",
                   help="settings as in the workflow config's 'characterize' section, e.g. "
                   "'default: {window_sigma: 10}' or 'hdbscan: {min_cluster_size: 20}'")
    p.add_argument("--format", dest="formats", nargs="+", choices=list(TABLE_FORMATS),
                   default=["parquet"], metavar="FMT",
                   help="members table formats: parquet (always written, read by 'ocdec "
                   "validate' and the workflow), fits, votable, csv (ECSV); written with "
                   "astropy with units and column descriptions (default: parquet)")
    p.add_argument("--known", metavar="TABLE", action="append",
                   help="published cluster table (Hunt & Reffert 2023, UCC, Cantat-Gaudin 2020 "
                   "CSV or VizieR TSV) naming the groups in DIR/groups.tsv (known_as); repeat "
                   "for several")
    p.add_argument("--no-dec", action="store_true",
                   help="default method: the error-aware mixture alone, no DEC refinement (faster)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ocdec.characterize import characterize, method_settings
    from ocdec.data.columns import read_stars
    from ocdec.io import check_writable_dir
    from ocdec.methods.priors import ClusterPriors
    from ocdec.products import MEMBERS
    from ocdec.tables import export_members
    from ocdec.verdict import read_known

    pm = args.pm_prior or (None, None)
    priors = ClusterPriors(ra=args.ra, dec=args.dec, radius_deg=args.radius, pmra=pm[0],
                           pmdec=pm[1], parallax=args.parallax_prior)
    config = _read_settings(args.settings)
    if args.no_dec:
        if args.method != "default":
            raise OcdecError("--no-dec applies to the default method only")
        config = {**config, "default": {**(config.get("default") or {}), "run_dec": False}}
    settings = method_settings(args.method, config)
    check_writable_dir(args.out, "--out")
    known = read_known(args.known)
    _refuse_field_among_products(args.field, args.out, args.method, args.formats)
    stars = read_stars(args.field)
    # an earlier ocdec run's folder (its summary.json): only there are stale tables ocdec's own
    earlier_run = (Path(args.out) / "summary.json").is_file()
    summary = characterize(stars, args.out, method=args.method, priors=priors, seed=args.seed,
                           n_seeds=args.n_seeds, settings=settings,
                           provenance={"source": "local", "input": str(args.field)}, known=known)
    export_members(Path(args.out) / MEMBERS, args.formats,
                   {"method": args.method, "input": str(args.field)})
    if earlier_run:
        remove_stale_products(args.out, args.method, args.formats, keep=[args.field])
    if summary["status"] != "found":
        print(f"{summary['status']}: {summary.get('reason', '')} ({summary['n_stars']} stars; "
              f"groups in {args.out})")
        return 0
    print(found_line(summary, args.out))
    return 0


def found_line(summary: dict, out: str | Path) -> str:
    """The line a found cluster prints; a method's optional summary keys (the false-alarm
    probability, the seeds' agreement) only where it gives them."""
    fap = summary.get("false_alarm_probability")
    jaccard = summary.get("seed_jaccard")
    return ("found" + (f", false-alarm probability {_fmt(fap, 2)}" if fap is not None else "")
            + f": {summary['n_members']} members of {summary['n_stars']} stars: "
            f"pmra {_fmt(summary['pmra'])} pmdec {_fmt(summary['pmdec'])} "
            f"parallax {_fmt(summary['parallax'], 4)}"
            + (f"; seed Jaccard {_fmt(jaccard)}" if jaccard is not None else "")
            + f"; {summary['runtime_s']:.1f} s -> {out}")


def _refuse_field_among_products(field: str | Path, out_dir: str | Path, method: str,
                                 formats: list[str]) -> None:
    """FIELD saved in --out under a name this run writes (members.csv with --format csv,
    members.parquet, summary.json, ...) would be overwritten: refused in one line."""
    from ocdec.methods.registry import method_spec
    from ocdec.products import MEMBERS, method_files, table_file

    out = Path(out_dir)
    names = {table_file(MEMBERS, fmt) for fmt in {"parquet", *formats}}
    names |= set(method_files(method_spec(method).tables).values())
    if Path(field).resolve() in {(out / name).resolve() for name in names}:
        raise OcdecError(f"{field}: this run writes its products under that name in {out}; "
                         "move the field or choose another --out")


def remove_stale_products(out_dir: str | Path, method: str, formats: list[str],
                          keep: list[str | Path] = ()) -> list[Path]:
    """Remove what an earlier run left in ``out_dir`` that this run did not rewrite: the members
    tables in the formats not in ``formats`` and the other methods' own tables, found by the
    names ocdec gives them (:mod:`ocdec.products`); nothing else, and never a file of ``keep``
    (the run's input, which may sit there under such a name). Called once this run's products
    are all written, so a failed run leaves the earlier ones whole, and only in a folder an
    earlier run wrote to. Returns the paths removed."""
    from ocdec.methods.registry import method_spec
    from ocdec.products import MEMBERS, TABLE_FORMATS, table_file, table_name

    out = Path(out_dir)
    names = [table_file(MEMBERS, fmt) for fmt in TABLE_FORMATS
             if fmt != "parquet" and fmt not in formats]
    own = set(method_spec(method).tables)
    names += [table_name(table) for other in method_names() if other != method
              for table in method_spec(other).tables if table not in own]
    kept = {Path(k).resolve() for k in keep}
    removed = []
    for name in dict.fromkeys(names):
        path = out / name
        if path.is_file() and path.resolve() not in kept:
            path.unlink()
            removed.append(path)
    if removed:
        log.info("removed %s, left in %s by an earlier run",
                 ", ".join(p.name for p in removed), out)
    return removed


def _read_settings(path: str | None) -> dict:
    """The ``characterize`` section from a YAML file (one-line errors for a bad file)."""
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(open(path, encoding="utf-8")) or {}
    except OSError as err:
        raise OcdecError(f"{path}: cannot read settings: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise OcdecError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from err
    data = data.get("characterize", data) if isinstance(data, dict) else data
    if not isinstance(data, dict):
        raise OcdecError(f"{path}: settings must be a mapping of method names to settings")
    return data


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is not None and 0 < abs(value) < 10 ** -digits:
        return f"{value:.1e}"
    return "nan" if value is None else f"{value:.{digits}f}"
