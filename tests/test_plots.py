"""Figures: content that can go wrong (members drawn, units on axes, magnitudes inverted, reference
marked, skipped regions explained), checked on the Axes rather than by eye."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ocdec.io import write_json, write_parquet, write_tsv
from ocdec.methods.astrometry import cluster_parameters
from ocdec.results import figures as plots

REGION = {"id": "NGC_2682", "name": "NGC 2682", "ra": 132.825, "dec": 11.8, "radius_deg": 0.3125}
REF = {
    "source": "SIMBAD",
    "pmra": -10.97,
    "pmra_error": 0.0064,
    "pmdec": -2.94,
    "pmdec_error": 0.0063,
    "parallax": 1.1325,
    "parallax_error": 0.0011,
}
UNIT = re.compile(r"\((mas|mas yr\$\^\{-1\}\$|mag|deg)\)")


def synthetic_members(
    n: int = 3000, n_members: int = 300, seed: int = 0, positions: bool = True, thesis: bool = False
) -> pd.DataFrame:
    """A members table following the contract: source_id, p_member, member, group, canonical
    columns (and the thesis-mode columns)."""
    rng = np.random.default_rng(seed)
    m = np.zeros(n, dtype=bool)
    m[rng.choice(n, n_members, replace=False)] = True
    frame = pd.DataFrame(
        {
            "source_id": np.arange(n, dtype=np.int64),
            "p_member": np.where(m, 0.9, 0.05),
            "member": m,
            "group": np.where(m, 0, np.where(rng.random(n) < 0.3, 1, -1)),
            "ra": REGION["ra"] + rng.normal(0, 0.15, n) if positions else np.nan,
            "dec": REGION["dec"] + rng.normal(0, 0.15, n) if positions else np.nan,
            "parallax": np.where(m, 1.13, 0.7) + rng.normal(0, np.where(m, 0.05, 0.6), n),
            "pmra": np.where(m, -10.97, -2.0) + rng.normal(0, np.where(m, 0.25, 6.0), n),
            "pmdec": np.where(m, -2.94, -1.0) + rng.normal(0, np.where(m, 0.25, 6.0), n),
            "phot_g_mean_mag": rng.uniform(9, 20, n),
            "bp_rp": rng.uniform(0.3, 2.5, n),
        }
    )
    if thesis:
        frame["kmeans_group"] = np.where(m | (rng.random(n) < 0.1), 0, rng.integers(1, 4, n))
        frame["kmeans_member"] = frame["kmeans_group"] == 0
        frame["dec_group"] = frame["kmeans_group"]
        frame["dec_member"] = m | (rng.random(n) < 0.02)
        frame["dec_filtered_member"] = m
    return frame


def summary_for(frame: pd.DataFrame, method: str) -> dict:
    summary = cluster_parameters(frame, frame["member"].to_numpy())
    summary.update(
        n_stars=len(frame),
        method=method,
        status="found",
        seeds=[0, 1],
        seed_jaccard=0.99,
        seed_jaccard_min=0.98,
        runtime_s=1.0,
    )
    if method == "thesis":
        summary["selections"] = {
            k: cluster_parameters(frame, frame[c].to_numpy())
            for k, c in (
                ("kmeans", "kmeans_member"),
                ("dec", "dec_member"),
                ("dec_filtered", "dec_filtered_member"),
            )
        }
        summary["kmeans_k"] = 4
    return summary


def history() -> pd.DataFrame:
    rows = []
    for seed in (0, 1):
        rows += [
            {
                "seed": seed,
                "phase": "pretrain",
                "epoch": e,
                "loss": 1.0 / (e + 1),
                "label_change": math.nan,
            }
            for e in range(10)
        ]
        rows += [
            {
                "seed": seed,
                "phase": "cluster",
                "epoch": e,
                "loss": 0.1 / (e + 1),
                "label_change": 0.1 / (e + 1),
            }
            for e in range(0, 20, 2)
        ]
    return pd.DataFrame(rows)


def collection(ax, gid: str):
    hits = [c for c in ax.collections if c.get_gid() == gid]
    return hits[0] if hits else None


@pytest.fixture(scope="module")
def selections() -> list[plots.Selection]:
    default = synthetic_members()
    thesis = synthetic_members(thesis=True)
    return plots.method_selections(
        {"default": (default, summary_for(default, "default")),
         "thesis": (thesis, summary_for(thesis, "thesis"))}
    )


@pytest.fixture(scope="module")
def methods_fig(selections):
    return plots.methods_figure(selections, REGION, REF)


def test_one_row_per_method_in_order(selections, methods_fig) -> None:
    assert [s.label for s in selections] == ["K-Means", "DEC", "DEC filtered", "default"]
    for s in selections:
        for panel in plots.PANELS:
            plots.find_axes(methods_fig, f"{s.label}:{panel}")


def test_members_are_all_drawn(selections, methods_fig) -> None:
    for s in selections:
        for panel in ("pm", "cmd", "sky"):
            ax = plots.find_axes(methods_fig, f"{s.label}:{panel}")
            members = collection(ax, "members")
            assert members is not None, f"{s.label} {panel}: no members drawn"
            assert len(members.get_offsets()) == s.n_members
        # parallax: the members histogram holds every member
        ax = plots.find_axes(methods_fig, f"{s.label}:parallax")
        member_patches = [p for p in ax.patches if p.get_gid() == "members"]
        assert member_patches, f"{s.label}: no members histogram"


def test_member_positions_are_the_members(selections, methods_fig) -> None:
    s = selections[-1]
    ax = plots.find_axes(methods_fig, "default:pm")
    drawn = np.asarray(collection(ax, "members").get_offsets())
    expected = s.stars.loc[s.member, ["pmra", "pmdec"]].to_numpy()
    np.testing.assert_allclose(np.sort(drawn[:, 0]), np.sort(expected[:, 0]))


def test_axes_labelled_with_units(methods_fig) -> None:
    for ax in plots.figure_axes(methods_fig):
        if ax.get_gid() and ax.get_gid().endswith(":parallax"):
            assert UNIT.search(ax.get_xlabel()), ax.get_xlabel()
            assert ax.get_ylabel() == "stars per bin"
            continue
        assert UNIT.search(ax.get_xlabel()), f"{ax.get_gid()}: {ax.get_xlabel()!r}"
        assert UNIT.search(ax.get_ylabel()), f"{ax.get_gid()}: {ax.get_ylabel()!r}"


def test_magnitude_axis_inverted_and_sky_east_left(methods_fig) -> None:
    cmd = plots.find_axes(methods_fig, "default:cmd")
    assert cmd.yaxis_inverted()
    assert "G" in cmd.get_ylabel() and "BP" in cmd.get_xlabel()
    sky = plots.find_axes(methods_fig, "default:sky")
    assert sky.xaxis_inverted()
    cone = [p for p in sky.patches if p.get_gid() == "cone"]
    assert cone and cone[0].height == pytest.approx(2 * REGION["radius_deg"])


def test_reference_marked(methods_fig) -> None:
    pm = plots.find_axes(methods_fig, "default:pm")
    ref = [ln for ln in pm.lines if ln.get_gid() == "reference"]
    assert ref, "no reference marker"
    assert ref[0].get_xdata()[0] == pytest.approx(REF["pmra"])
    assert ref[0].get_ydata()[0] == pytest.approx(REF["pmdec"])
    x0, x1 = pm.get_xlim()
    assert x0 < REF["pmra"] < x1
    plx = plots.find_axes(methods_fig, "default:parallax")
    line = [ln for ln in plx.lines if ln.get_gid() == "reference"]
    assert line and line[0].get_xdata()[0] == pytest.approx(REF["parallax"])


def test_field_subsampled_with_fixed_seed(selections) -> None:
    fig = plots.methods_figure(selections[-1:], REGION, REF, max_field=500)
    ax = plots.find_axes(fig, "default:cmd")
    field = collection(ax, "field")
    assert 0 < len(field.get_offsets()) <= 500
    assert collection(ax, "members").get_offsets().shape[0] == selections[-1].n_members
    fig2 = plots.methods_figure(selections[-1:], REGION, REF, max_field=500)
    np.testing.assert_array_equal(
        field.get_offsets(), collection(plots.find_axes(fig2, "default:cmd"), "field").get_offsets()
    )
    assert "subsampled" in fig._suptitle.get_text()


def test_field_without_positions_skips_sky_panel_with_note() -> None:
    frame = synthetic_members(positions=False)
    fig = plots.methods_figure(
        plots.method_selections({"default": (frame, summary_for(frame, "default"))}), REGION, REF
    )
    sky = plots.find_axes(fig, "default:sky")
    assert not sky.collections
    assert any("no positions" in t.get_text() for t in sky.texts)
    assert collection(plots.find_axes(fig, "default:pm"), "members") is not None


def test_skipped_region_figure_says_why(tmp_path: Path) -> None:
    status = {
        "region": "NGC_1",
        "status": "skipped",
        "n_input": 12,
        "n_usable": 10,
        "reason": "10 usable stars < min_stars 40000",
    }
    paths = plots.region_plots(
        tmp_path, {"id": "NGC_1", "name": "NGC 1"}, method_dirs={}, status=status,
        formats=("png",)
    )
    assert sorted(p.stem for p in paths) == sorted(plots.REGION_PLOTS)
    assert all(p.stat().st_size > 0 for p in paths)
    fig = plots.skipped_figure({"id": "NGC_1", "name": "NGC 1"}, status["reason"])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("skipped" in t for t in texts) and any("min_stars" in t for t in texts)


def test_silhouette_curve_marks_chosen_k() -> None:
    sil = pd.DataFrame(
        {"k": range(2, 11), "silhouette": [0.3, 0.5, 0.42, 0.4, 0.38, 0.36, 0.3, 0.3, 0.2]}
    )
    fig = plots.silhouette_figure(sil, 3)
    ax = fig.axes[0]
    chosen = [ln for ln in ax.lines if ln.get_gid() == "chosen"]
    assert chosen and chosen[0].get_xdata()[0] == 3
    curve = [ln for ln in ax.lines if ln.get_gid() == "silhouette"][0]
    assert len(curve.get_xdata()) == 9
    assert "k" in ax.get_xlabel() and "silhouette" in ax.get_ylabel()


def test_training_curves_one_line_per_seed_and_phase() -> None:
    fig = plots.training_figure({"default": history()}, tol=0.001)
    pre, clu, change = fig.axes[:3]
    assert len(pre.lines) == 2 and len(clu.lines) == 2
    assert len([ln for ln in change.lines if ln.get_label().startswith("seed")]) == 2
    assert change.get_yscale() == "log"
    assert all(ax.get_xlabel() == "epoch" for ax in (pre, clu, change))


def test_training_panels_without_epochs_are_empty_and_epochs_are_whole() -> None:
    """The default method's DEC does not pretrain: its pretraining panel says so, with no
    ticks and no log scale made up for it; the epoch axes tick whole epochs only."""
    h = history()
    h = h[(h["phase"] == "cluster") & (h["epoch"] < 3)]
    fig = plots.training_figure({"default": h})
    pre, clu, change = fig.axes[:3]
    fig.canvas.draw()
    assert pre.get_yscale() == "linear" and not len(pre.get_xticks()) and not len(
        pre.get_yticks())
    assert any("no pretraining epochs" in t.get_text() for t in pre.texts)
    for ax in (clu, change):
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
    # one epoch: one whole tick, not 0.95, 0.96, ...
    one = history().groupby(["seed", "phase"]).head(1)
    fig = plots.training_figure({"default": one}, tol=0.001)
    fig.canvas.draw()
    for ax in fig.axes[:3]:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert len(ticks) == 1 and float(ticks[0]).is_integer(), ticks
    # epochs where no label changed are drawn at the floor, and the axis says so
    zero = h.assign(label_change=h["label_change"].where(h["epoch"] != 2, 0.0))
    change = plots.training_figure({"default": zero}).axes[2]
    assert [t.get_text() for t in change.texts] == ["no label changed: drawn at 1e-6"]
    assert not plots.training_figure({"default": h}).axes[2].texts
    # no label changes: no tolerance line, no legend of seeds without data
    none = h.assign(label_change=math.nan)
    change = plots.training_figure({"default": none}, tol=0.001).axes[2]
    assert change.get_legend() is None and not any(
        "tol" in str(ln.get_label()) for ln in change.lines)


def write_method(directory: Path, frame: pd.DataFrame, method: str) -> None:
    write_parquet(directory / "members.parquet", frame)
    write_json(directory / "summary.json", summary_for(frame, method))
    write_tsv(directory / "history.tsv", history())
    if method == "thesis":
        write_tsv(
            directory / "silhouette.tsv",
            pd.DataFrame({"k": [2, 3, 4], "silhouette": [0.2, 0.3, 0.25]}),
        )


@pytest.mark.slow
def test_region_plots_writes_every_figure(tmp_path: Path) -> None:
    write_method(tmp_path / "default", synthetic_members(), "default")
    write_method(tmp_path / "thesis", synthetic_members(thesis=True), "thesis")
    paths = plots.region_plots(
        tmp_path / "plots",
        REGION,
        method_dirs={"default": tmp_path / "default", "thesis": tmp_path / "thesis"},
        references=[REF],
        status={"status": "ok"},
        formats=("png",),
    )
    names = {p.name for p in paths}
    assert names == {f"{stem}.png" for stem in plots.REGION_PLOTS}
    assert (tmp_path / "plots" / "methods.png").read_bytes()[:4] == b"\x89PNG"


def test_one_methods_figure_is_the_overview_retitled_byte_for_byte(tmp_path: Path,
                                                                    monkeypatch) -> None:
    """With one method, region_plots draws its panels once for the overview and the methods
    figure (methods_figure is not called; in PNG the panels are drawn once and each title onto
    them): the methods figure is the one methods_figure draws on its own, and the overview the
    one overview_figure draws, to the byte (PNG and PDF); only the titles differ."""
    import ocdec.results.figures.write as write

    def not_drawn(*args, **kwargs):
        raise AssertionError("the one-method methods figure was drawn again")

    write_method(tmp_path / "default", synthetic_members(n=40_000), "default")
    dirs = {"default": tmp_path / "default"}
    monkeypatch.setattr(write, "methods_figure", not_drawn)
    plots.region_plots(tmp_path / "plots", REGION, method_dirs=dirs, references=[REF],
                       status={"status": "ok"}, formats=("png", "pdf"), max_field=30_000)
    selections = plots.read_region(dirs, {"status": "ok"}).selections
    alone = plots.methods_figure(selections, REGION, REF, max_field=30_000)
    assert "subsampled to 30,000 of 40,000" in alone.get_suptitle()
    for fmt in ("png", "pdf"):
        want = plots.save_figure(alone, tmp_path / "alone" / f"methods.{fmt}").read_bytes()
        got = (tmp_path / "plots" / f"methods.{fmt}").read_bytes()
        assert got == want
        assert (tmp_path / "plots" / f"overview.{fmt}").read_bytes() != want
        overview = plots.overview_figure(selections[0], REGION, REF, max_field=30_000)
        want = plots.save_figure(overview, tmp_path / "alone" / f"overview.{fmt}").read_bytes()
        assert (tmp_path / "plots" / f"overview.{fmt}").read_bytes() == want


@pytest.mark.parametrize("rc", [{}, {"savefig.dpi": 150}, {"savefig.facecolor": "yellow"},
                                {"savefig.transparent": True}, {"savefig.bbox": "tight"}])
def test_retitled_pngs_are_whole_draws_under_any_savefig_settings(tmp_path: Path, rc) -> None:
    """A figure saved, retitled and saved again gives each title's PNG and PDF as savefig gives
    them for the figure drawn whole, whatever savefig's settings (a user's matplotlibrc): where
    they differ from matplotlib's defaults the drawing is not kept; the figure keeps its canvas."""
    import matplotlib as mpl
    from matplotlib.figure import Figure

    from ocdec.results.figures.style import save_retitled

    def figure(title: str) -> Figure:
        fig = Figure(figsize=(4, 3), dpi=80)
        ax = fig.add_axes((0.15, 0.15, 0.8, 0.65))
        ax.scatter([1, 2, 3], [3, 1, 2])
        fig.suptitle(title, y=0.98, va="top")
        return fig

    with mpl.rc_context(rc):
        fig = figure("first")
        canvas = fig.canvas
        paths = save_retitled(fig, tmp_path / "kept", ("a", "b"),
                              lambda f: f.suptitle("second", y=0.98, va="top"), ("png", "pdf"))
        assert fig.canvas is canvas
        assert [p.name for p in paths] == ["a.png", "a.pdf", "b.png", "b.pdf"]
        for stem, title in (("a", "first"), ("b", "second")):
            for fmt in ("png", "pdf"):
                want = plots.save_figure(figure(title), tmp_path / "whole" / f"{stem}.{fmt}")
                assert (tmp_path / "kept" / f"{stem}.{fmt}").read_bytes() == want.read_bytes()


def test_pdf_on_request(tmp_path: Path) -> None:
    fig = plots.silhouette_figure(pd.DataFrame({"k": [2, 3], "silhouette": [0.2, 0.3]}))
    path = plots.save_figure(fig, tmp_path / "silhouette.pdf")
    assert path.read_bytes()[:4] == b"%PDF"


def catalogue_summary() -> pd.DataFrame:
    rows = []
    for i, (rid, status) in enumerate(
        (("NGC_2682", "found"), ("NGC_2632", "found"), ("NGC_9999", "skipped"))
    ):
        row = {"region": rid, "status": status}
        for col, ref in (("pmra", -10.0 * (i + 1)), ("pmdec", 2.0 * i), ("parallax", 1.0 + i)):
            row[f"reference_{col}"] = ref
            row[f"reference_{col}_error"] = 0.01
            done = status == "found"
            row[col] = ref + 0.02 if done else math.nan
            row[f"{col}_error"] = 0.01 if done else math.nan
            row[f"{col}_offset_sigma"] = 0.02 / math.hypot(0.01, 0.01) if done else math.nan
            row[f"thesis_{col}"] = ref - 0.5 if done else math.nan
            row[f"thesis_{col}_error"] = 0.05 if done else math.nan
            row[f"thesis_{col}_offset_sigma"] = -0.5 / math.hypot(0.05, 0.01) if done else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def test_offsets_figure_plots_each_region() -> None:
    summary = catalogue_summary()
    fig = plots.offsets_figure(summary)
    ax = fig.axes[0]
    default = [ln for ln in ax.lines if ln.get_gid() == "offsets:pmra"][0]
    np.testing.assert_allclose(
        np.asarray(default.get_xdata(), dtype=float)[:2], summary["pmra_offset_sigma"][:2]
    )
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[2] == "NGC_9999 (skipped)"
    assert all("σ" in a.get_xlabel() for a in fig.axes)


def test_recovered_figure_has_one_to_one_line_and_points() -> None:
    fig = plots.recovered_figure(catalogue_summary())
    top = fig.axes[2]  # parallax, top row
    assert "parallax" in top.get_xlabel() and "(mas)" in top.get_xlabel()
    points = [c for c in top.containers if c.lines[0].get_gid() == "recovered:parallax"][0]
    assert len(points.lines[0].get_xdata()) == 2  # the skipped region has no point
    assert any(ln.get_label() == "1:1" for ln in top.lines)


def test_offsets_follow_the_registry() -> None:
    """One marker per registered method with results: HDBSCAN appears when run, a method whose
    columns are all empty (not run) does not."""
    summary = catalogue_summary()
    for col in ("pmra", "pmdec", "parallax"):
        summary[f"hdbscan_{col}"] = summary[col] + 0.1
        summary[f"hdbscan_{col}_error"] = 0.02
        summary[f"hdbscan_{col}_offset_sigma"] = summary[f"{col}_offset_sigma"] + 1.0
    assert [m.label for m in plots.method_markers(summary)] == [
        "default", "thesis (DEC filtered)", "hdbscan"]
    fig = plots.offsets_figure(summary)
    gids = {ln.get_gid() for ln in fig.axes[0].lines}
    assert {"offsets:pmra", "offsets:thesis_pmra", "offsets:hdbscan_pmra"} <= gids
    rows = [np.asarray(ln.get_ydata(), dtype=float) for ln in fig.axes[0].lines
            if str(ln.get_gid()).startswith("offsets:")]
    assert len({r[0] for r in rows}) == 3  # side by side within a region's row
    summary[[c for c in summary if c.startswith("thesis_")]] = math.nan
    assert [m.label for m in plots.method_markers(summary)] == ["default", "hdbscan"]
    fig = plots.recovered_figure(summary)
    gids = {c.lines[0].get_gid() for c in fig.axes[0].containers}
    assert gids == {"recovered:pmra", "recovered:hdbscan_pmra"}


def test_region_inputs_read_without_matplotlib(tmp_path: Path) -> None:
    """Reading is apart from drawing: ocdec.results.figure_inputs imports no matplotlib, and
    reads a region's products (selections, silhouette sweep, histories in registry order)."""
    import subprocess
    import sys

    code = ("import sys, ocdec.results.figure_inputs; "
            "sys.exit('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    from ocdec.results.figure_inputs import read_region

    write_method(tmp_path / "default", synthetic_members(), "default")
    write_method(tmp_path / "thesis", synthetic_members(thesis=True), "thesis")
    inputs = read_region({"default": tmp_path / "default", "thesis": tmp_path / "thesis"},
                         {"status": "ok"})
    assert inputs.skip is None
    assert [s.label for s in inputs.selections] == ["K-Means", "DEC", "DEC filtered", "default"]
    assert list(inputs.histories) == ["thesis", "default"]
    assert inputs.chosen_k == 4 and len(inputs.silhouette) == 3
    skipped = read_region({"default": tmp_path / "absent"}, {"status": "ok"})
    assert skipped.skip == ("failed", "no members table was produced")
    assert read_region({}, {"status": "skipped", "reason": "few"}).skip == ("skipped", "few")
