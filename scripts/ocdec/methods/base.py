"""What every membership method is: a name, a settings class and ``run`` giving a
:class:`MethodResult`. The rest of ocdec (characterize, comparison, summary, figures, command line,
workflow) works on ``{method: result}`` and knows methods only through
:mod:`ocdec.methods.registry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ocdec.methods.priors import ClusterPriors

#: Columns of a training curve (history.tsv); here rather than in :mod:`ocdec.methods.dec` so that
#: writing a skipped region's history.tsv does not import JAX.
HISTORY_COLUMNS = ["seed", "phase", "epoch", "loss", "label_change"]


@dataclass
class MethodResult:
    """One method's answer over a star table (all arrays have one entry per input row).

    ``p_member`` in [0, 1]; ``member`` the final selection; ``group`` the method's group of each
    star (-1: none); ``history`` a DEC-style training curve (columns of
    :data:`HISTORY_COLUMNS`) or None; ``parameters`` the selection's mean
    astrometry (:func:`ocdec.methods.astrometry.cluster_parameters`); ``summary`` the method's own
    summary.json keys; ``columns`` extra per-star columns for members.parquet; ``tables`` its own
    tables, written as ``{name}.tsv`` (names declared in the registry); ``groups`` the
    overdensities it saw, for groups.tsv. A method that finds no cluster says why in
    ``summary["reason"]`` (with no members); ``summary["false_alarm_probability"]`` where it
    measures one.
    """

    p_member: np.ndarray
    member: np.ndarray
    group: np.ndarray
    parameters: dict[str, Any]
    history: pd.DataFrame | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    columns: pd.DataFrame | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    # every significant group the method saw (columns of ocdec.verdict.GROUP_COLUMNS; None: the
    # selection alone is listed)
    groups: pd.DataFrame | None = None


class Method(Protocol):
    """A membership method (a module-level ``METHOD`` object). Its own members.parquet columns
    and tables are declared in its :class:`~ocdec.methods.registry.MethodSpec`."""

    name: str
    settings_class: type

    def default_settings(self) -> Any:
        """The settings a run uses when the config gives none (an instance of settings_class)."""
        ...

    def run(self, stars: pd.DataFrame, priors: ClusterPriors, settings: Any,
            seeds: Sequence[int]) -> MethodResult:
        """Members of the catalogue's cluster among ``stars`` (canonical columns, index 0..n-1).
        ``seeds``: the seeds to use (an ensemble takes all, a single-seed method the first)."""
        ...
