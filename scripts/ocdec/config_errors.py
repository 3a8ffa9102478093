"""One-line messages for mistakes in the workflow's config (the top-level Snakefile).

snakemake.utils.validate's error carries the whole schema and config (over 1,600 lines for a
misspelt top-level key); here it becomes one line naming the key path, the problem and the file
that set the key, and a config/config.yaml that does not parse one line with its line and column.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class ConfigSources:
    """Where a run's config comes from: ``--config`` values, every config file read (the
    defaults first) and those given with ``--configfile``."""

    command_line: Mapping[str, Any]
    files: Sequence[Any]
    given: Sequence[Any]


KNOWN_KEYS_SHOWN = 20
DEFAULTS = "config/config.yaml"
UNSET = object()


def config_key(path: Sequence[Any]) -> str:
    """A config key path as written in the docs: ``quality.min_stars``,
    ``characterize.methods[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text


def lookup_path(value: Any, path: Sequence[Any]) -> Any:
    """The value at a key path of a mapping, or UNSET where it has none."""
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return UNSET
    return value


def where_set(path: Sequence[Any], sources: ConfigSources) -> str | None:
    """Where the key at ``path`` gets its value: --config, else the last config file setting it
    (config/config.yaml first, then each --configfile in order); None where none does.
    ``sources``: :class:`ConfigSources`.
    """
    if lookup_path(dict(sources.command_line), path) is not UNSET:
        return "set with --config"
    given = [str(name) for name in sources.given]
    files = [str(name) for name in sources.files if str(name) not in given] + given
    for name in reversed(files):
        try:
            with open(name, encoding="utf-8") as handle:
                if lookup_path(yaml.safe_load(handle), path) is not UNSET:
                    return f"set in {name}"
        except (OSError, yaml.YAMLError):
            continue
    return None


def config_error_line(error: Any, sources: ConfigSources) -> str:
    """One line for a config ValidationError: the key path, the problem, the file setting it."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        unknown = [key for key in error.instance if key not in known]
        if unknown:
            key = str(unknown[0])
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f", did you mean {close[0]!r}?" if close else ""
            shown = ", ".join(known[:KNOWN_KEYS_SHOWN])
            if len(known) > KNOWN_KEYS_SHOWN:
                shown += f", ... ({len(known)} keys)"
            more = f"; {len(unknown) - 1} more unknown" if len(unknown) > 1 else ""
            source = where_set([*path, key], sources)
            return (
                f"config: {config_key([*path, key])}: unknown key{hint} "
                f"(known: {shown}{more}{f'; {source}' if source else ''})"
            )
    message = " ".join(error.message.split())
    key = f"{config_key(path)}: " if path else ""
    source = where_set(path, sources) if path else None
    if error.validator == "required" and not os.path.exists(DEFAULTS):
        # workflow/Snakefile reads the defaults from the working directory (--directory), and
        # Snakemake skips them without a word where a --configfile is given
        source = (
            f"{DEFAULTS}, the defaults, is not in the working directory {os.getcwd()}: "
            "give the repository's with --configfile, before the others"
        )
    return f"config: {key}{message}{f' ({source})' if source else ''}"


def yaml_error_line(error: yaml.YAMLError, name: str) -> str:
    """One line for a config file that does not parse: the file, line and column, problem."""
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(error, "problem", None) or (str(error).splitlines() or ["?"])[0]
    return f"{name}: {where}not valid YAML: {problem}"
