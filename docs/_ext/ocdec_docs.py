"""Pages generated from the code at build time, so they cannot drift from it.

- ``_generated/config.md``: every workflow setting, from ``workflow/schemas/config.schema.yaml``
  (type, allowed values), with its default (``config/config.yaml``, else the library's settings
  dataclass) and meaning (the schema's description, else the config file's or the dataclass's
  comment).
- ``_generated/cli.md``: every ``ocdec`` subcommand's help, from :func:`ocdec.cli.build_parser`.
- ``_generated/api.md``: the public names of ``import ocdec`` (``ocdec._API``), one autodoc entry
  each under the module that defines it.

The files are written under ``docs/_generated`` (ignored by git and excluded from the source
tree); the pages include them.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

DOCS = Path(__file__).resolve().parents[1]
REPO = DOCS.parent
OUT = DOCS / "_generated"


# --------------------------------------------------------------------------- configuration


def _config_comments(path: Path) -> dict[str, str]:
    """Inline comments of a YAML file by dotted key ("gaia.chunk_rows": "a cone expected ...")."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in path.read_text().splitlines():
        m = re.match(r"^(\s*)([A-Za-z_]\w*):(.*)$", line)
        if not m:
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        if "#" in rest:
            comments[".".join(k for _, k in stack)] = rest.split("#", 1)[1].strip()
    return comments


def _field_comments(cls: type) -> dict[str, str]:
    """Trailing ``# comments`` of a dataclass's fields, from its source."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    found = re.findall(r"^\s+(\w+):[^#\n]*#\s*(.+)$", source, re.MULTILINE)
    return dict(found)


def _library_defaults() -> dict[str, Any]:
    """Default settings instances of the config sections that map to settings dataclasses."""
    from ocdec.characterize import method_settings
    from ocdec.data.gaia import GaiaSettings
    from ocdec.data.quality import QualitySettings
    from ocdec.data.simulate import SimulateSettings
    from ocdec.methods.registry import method_names

    defaults: dict[str, Any] = {"gaia": GaiaSettings(), "simulate": SimulateSettings(),
                                "quality": QualitySettings()}
    for name in method_names():
        defaults[f"characterize.{name}"] = method_settings(name, {})
    return defaults


def _lookup(tree: Any, path: list[str]) -> tuple[bool, Any]:
    for key in path:
        if isinstance(tree, dict) and key in tree:
            tree = tree[key]
        elif dataclasses.is_dataclass(tree) and hasattr(tree, key):
            tree = getattr(tree, key)
        else:
            return False, None
    return True, tree


def _show(value: Any) -> str:
    if dataclasses.is_dataclass(value):
        return ""
    if isinstance(value, tuple):
        value = list(value)
    text = json.dumps(value) if not isinstance(value, str) else value
    return f"`{text}`" if text != "" else '`""`'


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return " | ".join(f"`{v}`" for v in node["enum"])
    kind = node.get("type", "")
    kinds = kind if isinstance(kind, list) else [kind]
    parts = []
    for k in kinds:
        if k == "array":
            items = node.get("items", {})
            inner = (" | ".join(f"`{v}`" for v in items["enum"]) if "enum" in items
                     else items.get("type", ""))
            parts.append(f"list of {inner}" if inner else "list")
        elif k:
            parts.append(str(k))
    limits = []
    for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                      ("exclusiveMaximum", "<")):
        if key in node:
            limits.append(f"{sign} {node[key]}")
    return " or ".join(parts) + (f" ({', '.join(limits)})" if limits else "")


def _walk(node: dict[str, Any], defs: dict[str, Any], path: list[str]
          ) -> Iterator[tuple[list[str], dict[str, Any]]]:
    if "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items()
                                                            if k != "$ref"}}
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from _walk(child, defs, [*path, key])


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def config_reference() -> str:
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    comments = _config_comments(REPO / "config/config.yaml")
    library = _library_defaults()
    lines = []
    for section, node in schema["properties"].items():
        lines += [f"### `{section}`", ""]
        if node.get("description"):
            lines += [_cell(node["description"]), ""]
        rows = [(p, n) for p, n in _walk(node, schema.get("$defs", {}), [section])
                if n.get("type") != "object" or p == [section]]
        if node.get("type") != "object":
            rows = rows[:1]
        else:
            rows = rows[1:]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for path, child in rows:
            dotted = ".".join(path)
            found, value = _lookup(config, path)
            owner = None
            if not found:  # the library's default, from the section's settings dataclass
                for prefix in sorted(library, key=len, reverse=True):
                    parts = prefix.split(".")
                    if path[: len(parts)] == parts:
                        found, value = _lookup(library[prefix], path[len(parts):])
                        _, owner = _lookup(library[prefix], path[len(parts):-1])
                        break
            meaning = child.get("description") or comments.get(dotted, "")
            if not meaning and owner is not None and dataclasses.is_dataclass(owner):
                meaning = _field_comments(type(owner)).get(path[-1], "")
            default = _show(value) if found else ""
            lines.append(f"| `{dotted}` | {_cell(_type(child))} | {_cell(default)} | "
                         f"{_cell(meaning)} |")
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line


def cli_reference() -> str:
    os.environ["COLUMNS"] = "96"  # argparse wraps help to the terminal width: fix it
    from ocdec.cli import build_parser

    parser = build_parser()
    lines = ["```text", parser.format_help().rstrip(), "```", ""]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        lines += [f"## `ocdec {name}`", "", "```text", command.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- API


def api_reference() -> str:
    import ocdec

    by_module: dict[str, list[str]] = {}
    for name, module in sorted(ocdec._API.items(), key=lambda kv: (kv[1], kv[0])):
        by_module.setdefault(module, []).append(name)
    lines = []
    for module, names in by_module.items():
        # autodoc writes reStructuredText, so its directives go in an eval-rst block
        lines += [f"## `{module}`", "", "```{eval-rst}"]
        for name in names:
            obj = getattr(ocdec, name)
            if inspect.isclass(obj):
                lines += [f".. autoclass:: {module}.{name}", "   :members:", ""]
            else:
                lines += [f".. autofunction:: {module}.{name}", ""]
        lines += ["```", ""]
    return "\n".join(lines)


def generate(*_: Any) -> None:
    OUT.mkdir(exist_ok=True)
    for name, text in (("config.md", config_reference()), ("cli.md", cli_reference()),
                       ("api.md", api_reference())):
        path = OUT / name
        if not path.exists() or path.read_text() != text:  # unchanged: no rebuild of its pages
            path.write_text(text)


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", generate)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
