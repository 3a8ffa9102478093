"""``ocdec validate MEMBERS --published LIST``: precision, recall, F1 and offsets."""

from __future__ import annotations

import argparse
import math
from typing import Any

from ocdec.errors import OcdecError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate", help="score a members file against a published member list",
        description="Match MEMBERS (members.parquet from characterize) with a published list by "
        "source_id, or by position within 1 arcsec where the ids differ (DR2 vs DR3), and print "
        "precision, recall, F1 and the mean offsets of pmra, pmdec and parallax. A list none of "
        "whose members lies in the field (another cluster's list, or the wrong field) is an "
        "error.")
    p.add_argument("members", metavar="MEMBERS", help="members.parquet")
    p.add_argument("--published", required=True, metavar="LIST",
                   help="published members (CSV, VizieR TSV/dat)")
    p.add_argument("--cluster", help="keep rows of LIST whose Cluster column is this")
    p.add_argument("--min-prob", type=float, default=0.5,
                   help="our members: p_member >= this (default 0.5)")
    p.add_argument("--published-min-prob", type=float, default=0.5,
                   help="published members: probability >= this (default 0.5)")
    p.add_argument("--g-max", type=float, default=18.0,
                   help="score stars with G <= this (default 18, CG2018's range); <= 0: no cut")
    p.add_argument("--match", choices=("auto", "id", "position"), default="auto")
    p.add_argument("--json", metavar="FILE", help="also write the scores as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ocdec.io import check_writable, write_json
    from ocdec.results.validation import read_published, score_members

    if args.json:
        check_writable(args.json, "--json")
    try:
        members = pd.read_parquet(args.members)
    except (OSError, ValueError) as err:
        raise OcdecError(f"{args.members}: cannot read members table ({err})") from err
    published = read_published(args.published, args.cluster)
    scores = score_members(members, published, min_prob=args.min_prob,
                           published_min_prob=args.published_min_prob,
                           g_max=args.g_max if args.g_max > 0 else None, match=args.match)
    _check_overlap(scores, args, "cluster" in published)
    print(f"match {scores['match']}: {scores['n_truth']} published members in the field, "
          f"{scores['n_members']} ours, {scores['true_positives']} in common")
    print(f"precision {_f(scores['precision'])} recall {_f(scores['recall'])} "
          f"F1 {_f(scores['f1'])}")
    offs = [f"{c} {_f(scores.get('offset_' + c), 4)}" for c in ("pmra", "pmdec", "parallax")
            if "offset_" + c in scores]
    if offs:
        print("mean offset (ours - published): " + ", ".join(offs))
    if args.json:
        write_json(args.json, {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                               for k, v in scores.items()})
    return 0


def _check_overlap(scores: dict[str, Any], args: argparse.Namespace, has_clusters: bool) -> None:
    """A list with nothing to score in this field is a mistake (another cluster's list, the wrong
    field, a probability cut above every star): one line saying so, no scores written."""
    if not scores["n_published"]:
        raise OcdecError(f"{args.published}: no published member has probability >= "
                         f"{args.published_min_prob:g} (--published-min-prob); nothing to score")
    if not scores["n_published_in_field"]:
        hint = ("; --cluster picks one cluster of a list of several"
                if has_clusters and not args.cluster else "")
        raise OcdecError(f"{args.published}: none of its {scores['n_published']} published "
                         f"members lies in the field of {args.members} (matched by "
                         f"{scores['match']}): the list is probably for another cluster, or the "
                         f"field is wrong{hint}")


def _f(value: float | None, digits: int = 3) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"
