"""The documentation's generated pages cover the code, and every page is in the site.

The full build (``make docs``: Sphinx, warnings as errors, the tutorial executed) runs in CI after
the tests; these checks are the fast part and need no Sphinx.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

import ocdec

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import ocdec_docs  # noqa: E402


def _schema_keys(node: dict, defs: dict, path: str) -> set[str]:
    if "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[1]]
    keys = {path} if path else set()
    for key, child in node.get("properties", {}).items():
        keys |= _schema_keys(child, defs, f"{path}.{key}" if path else key)
    return keys


def test_config_reference_lists_every_setting() -> None:
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    text = ocdec_docs.config_reference()
    leaves = {k for k in _schema_keys(schema, schema["$defs"], "")
              if not any(other.startswith(k + ".") for other in _schema_keys(
                  schema, schema["$defs"], ""))}
    missing = [k for k in leaves if f"| `{k}` |" not in text]
    assert not missing
    formats = "list of `parquet` \\| `fits` \\| `votable` \\| `csv`"
    assert f"| `tables.formats` | {formats} | `[]` |" in text
    assert "| `characterize.default.dec.cluster_epochs` | integer (>= 0) |" in text


def test_cli_reference_has_every_command() -> None:
    from ocdec.cli import COMMANDS

    text = ocdec_docs.cli_reference()
    assert all(f"## `ocdec {name}`" in text for name in COMMANDS)
    assert "--format FMT [FMT ...]" in text


def test_api_reference_has_every_public_name() -> None:
    text = ocdec_docs.api_reference()
    assert all(f":: {module}.{name}\n" in text for name, module in ocdec._API.items())


def test_every_page_is_reachable_and_the_tutorial_fits_the_parameters() -> None:
    index = (DOCS / "index.md").read_text()
    assert ":glob:" in index and "\n*\n" in index  # new docs/*.md pages join the site
    notebook = json.loads((DOCS / "tutorial.ipynb").read_text())
    sources = ["".join(cell["source"]) for cell in notebook["cells"]]
    assert any("ocdec.fit_parameters(" in s for s in sources)
    assert all(not cell.get("outputs") for cell in notebook["cells"] if cell["cell_type"] == "code")
