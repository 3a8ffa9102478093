"""The membership methods ocdec knows, one line each, and how to load them.

This module is light on purpose (no NumPy, no JAX, no scikit-learn): the workflow, the command
line and the config schema test read it to know the method names, their products and resources
without importing a method. A method's code is imported only when :meth:`MethodSpec.load` asks.

To add a method: write a module with a ``METHOD`` object that follows
:class:`ocdec.methods.base.Method`, and add one :class:`MethodSpec` line to :data:`REGISTRY`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ocdec.errors import OcdecError

if TYPE_CHECKING:
    from ocdec.methods.base import Method


@dataclass(frozen=True)
class Selection:
    """One set of stars a method reports, shown as a row of the comparison table and of the
    methods figure: ``member`` and ``group`` are members.parquet columns, ``key`` names the
    entry of summary.json ``selections`` holding its parameters (None: the top-level numbers),
    ``note`` a template formatted with summary.json (e.g. "k = {kmeans_k}")."""

    label: str
    member: str = "member"
    group: str | None = "group"
    key: str | None = None
    note: str = ""


@dataclass(frozen=True)
class MethodSpec:
    """What the rest of ocdec needs to know of a method without importing it.

    ``member_columns``: the per-star columns the method adds to members.parquet, with their dtype
    ("int64" or "bool"; a skipped region gets them as -1 / False); ``table_columns``: the method's
    own per-region tables (``{name}.tsv`` beside members.parquet) and their columns (``tables``:
    their names). Both live here, not in the method's module, so that a skipped region's files are
    written without importing the method (JAX, scikit-learn);
    ``summary_fields``: keys of its summary.json copied into results/summary.tsv as
    ``{method}_{key}``; ``shared_settings``: keys of the ``characterize`` config section it uses
    (changing the others does not rerun it); ``mem_mb``: (base MB, MB per 1,000 stars);
    ``runtime``: (base minutes, minutes at 100,000 stars, exponent of the star count).
    """

    name: str
    module: str
    description: str
    selections: tuple[Selection, ...] = (Selection("{method}"),)
    member_columns: Mapping[str, str] = field(default_factory=dict, hash=False)
    table_columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    summary_fields: tuple[str, ...] = ()
    shared_settings: tuple[str, ...] = ("seed",)
    mem_mb: tuple[float, float] = (1500.0, 3.0)
    runtime: tuple[float, float, float] = (15.0, 3.0, 1.0)
    uses_jax: bool = False

    @property
    def tables(self) -> tuple[str, ...]:
        """Names of the method's own tables."""
        return tuple(self.table_columns)

    def load(self) -> Method:
        """The method object (imports its module)."""
        return importlib.import_module(self.module).METHOD

    def selection_label(self, selection: Selection) -> str:
        return selection.label.format(method=self.name)


# Per-star columns thesis mode adds to members.parquet, with their dtype in a skipped region.
THESIS_COLUMNS = {"kmeans_group": "int64", "kmeans_member": "bool", "dec_group": "int64",
                  "dec_member": "bool", "dec_filtered_member": "bool"}

_THESIS_SELECTIONS = (
    Selection("K-Means", "kmeans_member", "kmeans_group", "kmeans", "k = {kmeans_k}"),
    Selection("DEC", "dec_member", "dec_group", "dec"),
    Selection("DEC filtered", "dec_filtered_member", "dec_group", "dec_filtered"),
)

# Order: the order of rows in comparison tables and figures (the thesis's selections first,
# as the thesis showed them, then ocdec's methods).
REGISTRY: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("thesis", "ocdec.methods.thesis",
                   "the thesis's K-Means silhouette sweep, DEC and quantile filter",
                   selections=_THESIS_SELECTIONS, member_columns=THESIS_COLUMNS,
                   table_columns={"silhouette": ("k", "silhouette")},
                   summary_fields=("kmeans_k",), mem_mb=(2000.0, 5.0),
                   runtime=(15.0, 6.0, 1.0), uses_jax=True),
        MethodSpec("default", "ocdec.methods.default.method",
                   "ocdec's default method: peak search, error-aware mixture, DEC, seed ensemble",
                   shared_settings=("seed", "n_seeds", "threshold"), uses_jax=True),
        MethodSpec("hdbscan", "ocdec.methods.hdbscan",
                   "HDBSCAN on robust-scaled astrometry and sky position (Hunt & Reffert 2023)",
                   shared_settings=(), mem_mb=(1500.0, 3.0),
                   # measured about n^2.2 on 2 cores: 40 s at 80,000 stars, ~1.1 min at
                   # 100,000 and ~26 min extrapolated at 434,000; requested with a factor 3 in hand
                   runtime=(15.0, 3.0, 2.1)),
    )
}
# The method whose numbers are the region's own in the catalogue summary (unprefixed columns)
# and in the overview figure.
PRIMARY = "default"


def method_spec(name: str) -> MethodSpec:
    """The registry entry of ``name``, or a one-line error naming the known methods."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise OcdecError(f"unknown method {name!r}; known: {', '.join(REGISTRY)}") from None


def method_names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get_method(name: str) -> Any:
    """The method object of ``name`` (see :class:`ocdec.methods.base.Method`)."""
    return method_spec(name).load()
