"""Where a run's products live and what they are called: one home for the file layout.

A region's products sit under ``{results}/{region}/``: the quality gate's ``stars.parquet`` and
``status.json``, one folder per method (``members.parquet``, ``summary.json``, ``history.tsv``,
``groups.tsv`` and the method's own tables), ``comparison.tsv`` and ``plots/{figure}.{format}``.
The catalogue's are ``{results}/summary.tsv`` and ``{results}/{figure}.{format}``; the physical
parameters add ``parameters.json`` and ``parameters.png`` to one method's folder and
``{results}/catalogue.fits`` and ``.vot``. The workflow (``common.smk``), the command line and the
library all take these names from here.

Light on purpose (no pandas, matplotlib or JAX at import): the workflow imports it to build its
job graph.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ocdec.errors import OcdecError

STARS = "stars.parquet"
STATUS = "status.json"
MEMBERS = "members.parquet"
SUMMARY = "summary.json"
HISTORY = "history.tsv"
GROUPS = "groups.tsv"
COMPARISON = "comparison.tsv"
PLOTS = "plots"
CATALOGUE_TABLE = "summary.tsv"
# Physical parameters (ocdec.physics) of the members of one method (config parameters.method):
# results/{region}/{method}/parameters.{json,png}, and the catalogue results/catalogue.{fits,vot}.
PARAMETERS = "parameters.json"
PARAMETERS_FIGURE = "parameters.png"
PHYSICS_CATALOGUE: dict[str, str] = {"fits": "catalogue.fits", "vot": "catalogue.vot"}
#: Formats the members tables and the catalogue summary can also be written in, with their file
#: suffix (``ocdec.tables``; members.parquet and summary.tsv are always written).
TABLE_FORMATS: dict[str, str] = {"parquet": "parquet", "fits": "fits", "votable": "vot",
                                 "csv": "csv"}

# Per-region figures (always all of them, so the job graph is static; a skipped region's figures
# say why) and catalogue figures, with the labels the report shows. Captions:
# workflow/report/{name}.rst.
REGION_FIGURES: dict[str, str] = {
    "overview": "overview (default method)",
    "methods": "methods side by side",
    "silhouette": "K-Means silhouette",
    "training": "DEC training curves",
    "groups": "groups in the cone",
}
CATALOGUE_FIGURES: dict[str, str] = {
    "offsets": "offsets from the references",
    "recovered": "recovered vs reference",
}
# Catalogue figures of the physical parameters (written by the parameters_catalogue rule).
PHYSICS_FIGURES: dict[str, str] = {
    "age_radius": "age against Galactocentric radius",
    "parameters_literature": "physical parameters vs reference",
}

PathLike = str | os.PathLike[str]


def table_name(table: str) -> str:
    """File name of a method's own table (e.g. "silhouette" -> silhouette.tsv)."""
    return f"{table}.tsv"


def method_files(tables: tuple[str, ...] | list[str] = ()) -> dict[str, str]:
    """A method folder's files by key: members, summary, history, groups and the method's own
    tables."""
    names = {"members": MEMBERS, "summary": SUMMARY, "history": HISTORY, "groups": GROUPS}
    names.update({table: table_name(table) for table in tables})
    return names


def table_file(path: str, fmt: str) -> str:
    """``path`` with the suffix of table format ``fmt`` (members.parquet -> members.fits)."""
    stem, _, _ = path.rpartition(".")
    return f"{stem}.{TABLE_FORMATS[fmt]}"


def region_dir(results: PathLike, region: str) -> Path:
    return Path(results) / region


def method_dir(results: PathLike, region: str, method: str) -> Path:
    return Path(results) / region / method


def figure_path(directory: PathLike, name: str, fmt: str = "png") -> Path:
    return Path(directory) / f"{name}.{fmt}"


def read_json(path: PathLike | None) -> dict[str, Any] | None:
    """A product's JSON (summary.json, status.json), None where absent; a one-line error where
    it is not JSON."""
    if path is None or not Path(path).exists():
        return None
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise OcdecError(f"{path}: not valid JSON: {err}") from err


class MethodProducts:
    """The files of one method's folder (``results/{region}/{method}/``), read lazily."""

    def __init__(self, directory: PathLike, tables: tuple[str, ...] | list[str] = ()) -> None:
        self.directory = Path(directory)
        self.files = {key: self.directory / name for key, name in method_files(tables).items()}

    @property
    def summary(self) -> dict[str, Any] | None:
        return read_json(self.files["summary"])

    def exists(self, key: str) -> bool:
        return self.files[key].exists()

    def table(self, key: str) -> Any:
        """A TSV product (history or a method table) as a DataFrame, None where absent."""
        import pandas as pd

        path = self.files[key]
        return pd.read_csv(path, sep="\t") if path.exists() else None


# Path templates for the workflow ("{region}" left as a wildcard unless a region is given).
RESULTS = "results"


def region_file(name: str, region: str = "{region}", results: str = RESULTS) -> str:
    """``results/{region}/{name}`` (stars.parquet, status.json, comparison.tsv)."""
    return f"{results}/{region}/{name}"


def method_file(method: str, name: str, region: str = "{region}", results: str = RESULTS) -> str:
    """``results/{region}/{method}/{name}`` (members.parquet, summary.json, ...)."""
    return f"{results}/{region}/{method}/{name}"


def figure_file(name: str, fmt: str = "png", region: str = "{region}",
                results: str = RESULTS) -> str:
    """A region figure, ``results/{region}/plots/{name}.{fmt}``."""
    return f"{results}/{region}/{PLOTS}/{name}.{fmt}"


def catalogue_file(name: str, results: str = RESULTS) -> str:
    """A catalogue product, ``results/{name}`` (summary.tsv, offsets.png, ...)."""
    return f"{results}/{name}"
