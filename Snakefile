# The workflow is workflow/Snakefile. Included here so that a mistake in the config stops the run
# with one line naming the key (and the file that sets it) rather than the schema and the whole
# config that snakemake.utils.validate's message carries (over 1,600 lines for a misspelt
# top-level key): Snakemake raises a WorkflowError whose context is jsonschema's
# ValidationError, or, where config/config.yaml itself does not parse, the YAML error. (A config
# file given with --configfile is read before this file, so its YAML errors stay Snakemake's.)
import difflib
import os
import sys

import yaml
from jsonschema.exceptions import ValidationError
from snakemake.exceptions import WorkflowError

KNOWN_KEYS_SHOWN = 20
DEFAULTS = "config/config.yaml"
UNSET = object()


def config_key(path):
    """A config key path as written in the docs: ``quality.min_stars``,
    ``characterize.methods[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text


def lookup_path(value, path):
    """The value at a key path of a mapping, or UNSET where it has none."""
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return UNSET
    return value


def where_set(path):
    """Where the key at ``path`` gets its value: --config, else the last config file setting it
    (config/config.yaml first, then each --configfile in order); None where none does.
    """
    if lookup_path(dict(workflow.config_settings.config), path) is not UNSET:
        return "set with --config"
    given = [str(name) for name in workflow.overwrite_configfiles]
    files = [
        str(name) for name in workflow.configfiles if str(name) not in given
    ] + given
    for name in reversed(files):
        try:
            with open(name, encoding="utf-8") as handle:
                if lookup_path(yaml.safe_load(handle), path) is not UNSET:
                    return f"set in {name}"
        except (OSError, yaml.YAMLError):
            continue
    return None


def config_error_line(error):
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
            source = where_set([*path, key])
            return (
                f"config: {config_key([*path, key])}: unknown key{hint} "
                f"(known: {shown}{more}{f'; {source}' if source else ''})"
            )
    message = " ".join(error.message.split())
    key = f"{config_key(path)}: " if path else ""
    source = where_set(path) if path else None
    if error.validator == "required" and not os.path.exists(DEFAULTS):
        # workflow/Snakefile reads the defaults from the working directory (--directory), and
        # Snakemake skips them without a word where a --configfile is given
        source = (
            f"{DEFAULTS}, the defaults, is not in the working directory {os.getcwd()}: "
            "give the repository's with --configfile, before the others"
        )
    return f"config: {key}{message}{f' ({source})' if source else ''}"


def yaml_error_line(error, name):
    """One line for a config file that does not parse: the file, line and column, problem."""
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(error, "problem", None) or (str(error).splitlines() or ["?"])[0]
    return f"{name}: {where}not valid YAML: {problem}"


try:
    workflow.include("workflow/Snakefile")
except WorkflowError as err:
    context = err.__context__
    if isinstance(context, ValidationError) and "config file" in str(err):
        sys.exit(f"Error: {config_error_line(context)}")
    if isinstance(context, yaml.YAMLError) and str(err).startswith("Config file"):
        sys.exit(f"Error: {yaml_error_line(context, workflow.configfiles[-1])}")
    raise


workflow.default_target = "all"
