"""The benchmark's report: plain text on the terminal, markdown and JSON on request."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import CANONICAL, GOAL_REGION_S, PIPELINES, THESIS_FIGURES, THESIS_REGIONS, THESIS_STARS
from bench.fits import finish_scaling
from bench.jobs import plain


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], markdown: bool) -> str:
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))
                     for r in cells)


STAGE_COLUMNS = CANONICAL


def stage_rows(entries: list[tuple[str, int, dict[str, Any]]]) -> list[list[Any]]:
    rows = []
    for label, n, block in entries:
        stages, total = block.get("stages") or {}, block.get("total") or {}
        if not total:
            rows.append([label, n, "timed out", *["-"] * (len(STAGE_HEADER) - 3)])
            continue
        rows.append([label, n, *(stages[s]["wall_s"] for s in STAGE_COLUMNS), total["wall_s"],
                     total["cpu_s"], round(total["stars_per_s"]), total["peak_rss_mb"]])
    return rows


STAGE_HEADER = ("pipeline", "rows", *(f"{s} s" for s in STAGE_COLUMNS), "total s", "cpu s",
                "stars/s", "peak MB")


def render(report: dict[str, Any], markdown: bool) -> str:
    m = report["machine"]
    parts = []
    head = (f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gb']} GB RAM; load average "
            f"{', '.join(f'{x:.2f}' for x in m['loadavg_start'])} at the start, "
            f"{', '.join(f'{x:.2f}' for x in m['loadavg_end'])} at the end; "
            f"jax {m['versions'].get('jax')}, numpy {m['versions'].get('numpy')}, "
            f"scikit-learn {m['versions'].get('sklearn')}. Thesis: {THESIS_FIGURES}.")
    cache = m.get("jax_cache")
    if cache:
        head += (f" JAX compilation cache: {cache['dir']} ({cache['entries_at_start']} entries at "
                 "the start: " + ("warm, as for the later regions of a catalogue)"
                                  if cache["entries_at_start"] else
                                  "cold, as for the first region)") if cache["dir"] else
                 " JAX compilation cache: off.")
    if m.get("thesis_dec_max_stars"):
        head += (f" Thesis mode's DEC trained on a seeded sample of at most "
                 f"{m['thesis_dec_max_stars']:,} stars (opt-in), then assigned every star.")
    parts.append(head)
    if report["mode"] == "region":
        parts.append(_region_text(report, markdown))
    elif report["mode"] == "flops":
        from bench.flops import flops_text

        parts.append(flops_text(report, markdown))
        return "\n\n".join(parts) + "\n"
    elif report["mode"] == "catalogue":
        from bench.catalogue import catalogue_text

        parts.append(catalogue_text(report))
        return "\n\n".join(parts) + "\n"
    elif report["mode"] == "workflow":
        from bench.workflow import workflow_text

        parts.append(workflow_text(report))
        return "\n\n".join(parts) + "\n"
    else:
        parts.append(_scaling_text(report, markdown))
    warm = m.get("warm")
    runs = ("every job is forked from a warm interpreter, as a local workflow run forks its rule "
            f"jobs (its imports took {warm['imports_s']:.1f} s once, before the first job, and "
            "are not in the table)" if warm else
            "every job runs in a fresh process, as a cluster job does")
    parts.append("Stages: startup = interpreter start (or fork) and imports of each job; "
                 "features = the default method's peak search and mixture fit (its "
                 "pre-selection) and thesis mode's feature table; dec = the default method's "
                 f"bootstrap ensemble and DEC runs, thesis mode's DEC; {runs}. Times are wall "
                 "seconds on a machine shared with other work (see the load average); cpu s is "
                 "user + system time of the jobs.")
    return "\n\n".join(parts) + "\n"


def _region_text(report: dict[str, Any], markdown: bool) -> str:
    usable = (f"{report['n_usable']:,}" if report.get("n_usable") is not None
              else "quality job timed out: ?")
    out = [f"Region benchmark: {report['n_rows']:,} rows simulated at {report['region']} "
           f"({usable} after the quality filter), default method, "
           f"{report['n_seeds']} seeds."]
    entries = [("default", report["n_rows"], report["default"])]
    if "full" in report:
        entries.append(("full", report["n_rows"], report["full"]))
    out.append(_table(STAGE_HEADER, stage_rows(entries), markdown))
    f1 = report.get("f1_default")
    if f1:
        out.append(f"ocdec default vs simulated truth: F1 {f1['f1']:.3f} (precision "
                   f"{f1['precision']:.3f}, recall {f1['recall']:.3f}; {f1['n_members']} members, "
                   f"{f1['n_true']} true members after the quality filter).")
    default_info = report["jobs"].get("default", {}).get("info") or {}
    if default_info:
        ran = default_info.get("dec_history_rows", 0) > 0
        out.append("Default method: DEC " + ("ran" if ran else "did not run (no DEC history: "
                   "the candidates form one group)") + f"; seed Jaccard "
                   f"{_fmt(default_info.get('seed_jaccard'), 4)}.")
    goals = report.get("goals")
    if goals:
        total = report["default"]["total"]
        met = "met" if goals["region_le_60s"] else "NOT met"
        out.append(f"Goal <= {GOAL_REGION_S:.0f} s: {met} ({total['wall_s']:.1f} s); <= 4 GB peak: "
                   f"{'met' if goals['region_le_4GB'] else 'NOT met'} "
                   f"({total['peak_rss_mb']:.0f} MB).")
    hdb = report.get("hdbscan")
    if hdb:
        rows = [[r["n"], r.get("hdbscan_s"), r.get("peak_rss_mb"), r.get("n_clusters"),
                 r.get("f1_oracle")] for r in hdb["subsamples"] + ([hdb["full"]] if hdb["full"]
                                                                  else [])]
        out.append("scikit-learn HDBSCAN (" + hdb["features"] + f", min_cluster_size "
                   f"{hdb['min_cluster_size']}):")
        out.append(_table(("stars", "HDBSCAN s", "peak MB", "clusters", "F1 (oracle group)"),
                          [[r[0], r[1], r[2], r[3], None if r[4] is None else f"{r[4]:.3f}"]
                           for r in rows], markdown))
        fit = hdb["fit"]
        if fit:
            ran = " (also run on the whole field, above)" if hdb["full"] else (
                f" (not run on the whole field: over the {hdb['limit_s']:.0f} s limit)")
            out.append(f"HDBSCAN time ~ n^{fit['b']:.2f}: extrapolated to the whole field of "
                       f"{hdb['n_full']:,} stars: {hdb['extrapolated_full_s']:,.0f} s{ran}. "
                       + hdb["note"])
    return "\n\n".join(out)


def _scaling_text(report: dict[str, Any], markdown: bool) -> str:
    out = [f"Scaling benchmark: simulated fields at {report['region']}, "
           f"{report['n_seeds']} seeds."]
    entries = []
    for f in report["fields"]:
        entries += [(p, f["n_rows"], f[p]) for p in PIPELINES if p in f]
    out.append(_table(STAGE_HEADER, stage_rows(entries), markdown))
    f1 = [(f["n_rows"], f["f1_default"]["f1"]) for f in report["fields"] if "f1_default" in f]
    if f1:
        out.append("Default method F1 vs truth: " + ", ".join(f"{n:,}: {v:.3f}" for n, v in f1))
    fits = report["fits"]
    rows = []
    for pipeline in PIPELINES:
        if f"{pipeline}_wall" not in fits:
            continue
        stages = fits[f"{pipeline}_stages"]
        row = [pipeline, *(None if stages[s] is None else f"{stages[s]['b']:.2f}"
                           for s in STAGE_COLUMNS)]
        wall, cpu, rss = (fits[f"{pipeline}_{k}"] for k in ("wall", "cpu", "rss"))
        row += [None if fit is None else f"{fit['b']:.2f}" for fit in (wall, cpu, rss)]
        rows.append(row)
    out.append("Scaling exponents b (time ~ a n^b, least squares in log-log):")
    out.append(_table(("pipeline", *STAGE_COLUMNS, "total", "cpu", "peak MB"), rows, markdown))
    cat = report["catalogue"]
    out.append(f"Catalogue: {cat['n_regions']} of {cat['n_regions_all']} regions have >= "
               f"{cat['min_rows']:,} rows in Gaia DR2 by the simulator's Galactic model, "
               f"{cat['total_rows'] / 1e6:,.1f} M rows in all (thesis: {THESIS_REGIONS} regions, "
               f"{THESIS_STARS / 1e6:.0f} M stars). Largest: "
               + ", ".join(f"{k} {v / 1e6:.1f} M" for k, v in cat["largest"])
               + f". {cat['beyond_measured']['n_regions']} regions "
               f"({cat['beyond_measured']['rows'] / 1e6:.1f} M rows) lie beyond the largest "
               "measured field: their times are extrapolated.")
    rows = []
    for label, key in (("fixed + per star", "projection"), ("a n^b", "projection_power_law")):
        for pipeline, p in (report.get(key) or {}).items():
            cpu2 = p["cpu_s_over_2"]
            rows.append([label, pipeline, p["wall_s"] / 3600, p["scaled_to_75M_wall_s"] / 3600,
                         None if cpu2 is None else cpu2 / 3600,
                         None if cpu2 is None else p["scaled_to_75M_cpu_s_over_2"] / 3600,
                         round(p["stars_per_s"]), p["region_434k_s"],
                         "yes" if p["meets_1h"] else "no",
                         "yes" if p["meets_21k_per_s"] else "no"])
    out.append(_table(("model", "pipeline", "catalogue h", "75 M h", "catalogue cpu/2 h",
                       "75 M cpu/2 h", "stars/s", "434k region s", "75 M <= 1 h", ">= 21k/s"),
                      rows, markdown))
    fits = report["fits"]
    for pipeline in PIPELINES:
        fit = fits.get(f"{pipeline}_wall_affine")
        cpu = fits.get(f"{pipeline}_cpu_affine")
        if fit:
            out.append(f"{pipeline}: wall ~ {fit['c']:.1f} s + n / "
                       f"{(1 / fit['s']) if fit['s'] > 0 else math.inf:,.0f} stars/s"
                       + (f"; CPU ~ {cpu['c']:.1f} s + n / "
                          f"{(1 / cpu['s']) if cpu['s'] > 0 else math.inf:,.0f} stars/s"
                          if cpu else ""))
    out.append("Projection: the fitted time of each region (fixed cost + cost per star, the "
               "model used for the verdict; the power law a n^b is shown too, but fixed costs "
               "make b meaningless here) summed over the regions, jobs one after another (each "
               "free to use both cores); 'cpu/2' divides the fitted CPU seconds by two, what two "
               "single-core jobs side by side could do on an otherwise idle machine; '75 M' is "
               "the thesis's catalogue (169 regions, 75 M stars: fixed cost x 169 + cost per "
               "star x 75 M; for a n^b the catalogue scaled by 75 M / its rows). Verdicts use "
               "wall time. Goal: whole "
               "catalogue <= 1 h on 2 cores (>= 21,000 stars/s end to end), a 434,000-star "
               "region <= 60 s.")
    return "\n\n".join(out)


def report_main(argv: Sequence[str]) -> int:
    """``report IN.json [IN2.json ...] [--json OUT] [--markdown OUT]``: redo the fits and
    projections of saved scaling runs (their fields merged; a later file's field of the same size
    replaces an earlier one's pipelines it has) and print/write the report again."""
    parser = argparse.ArgumentParser(prog="bench report")
    parser.add_argument("inputs", nargs="+", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    reports = [json.loads(p.read_text()) for p in args.inputs]
    base = reports[0]
    if base["mode"] == "scaling":
        by_n: dict[int, dict[str, Any]] = {}
        for rep in reports:
            for f in rep["fields"]:
                merged = by_n.setdefault(f["n_rows"], {})
                merged.update({k: v for k, v in f.items() if k in PIPELINES or k not in merged})
        base["fields"] = list(by_n.values())
        base["merged_from"] = [str(p) for p in args.inputs]
        base = finish_scaling(base)
        loads = [rep["machine"] for rep in reports]
        base["machine"]["loadavg_start"] = loads[0]["loadavg_start"]
        base["machine"]["loadavg_end"] = loads[-1]["loadavg_end"]
    return emit(base, args.json, args.markdown)


def emit(report: dict[str, Any], json_path: Path | None = None,
         markdown_path: Path | None = None) -> int:
    """Write the report as JSON where asked (first: the measurements outlive a rendering
    fault), print it, and write it as markdown where asked (atomically)."""
    from ocdec.io import write_text

    if json_path:
        write_text(json_path, json.dumps(report, indent=2, default=plain) + "\n")
    print(render(report, markdown=False))
    if markdown_path:
        write_text(markdown_path, render(report, markdown=True))
    return 0
