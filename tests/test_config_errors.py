"""ocdec.config_errors: the one-line messages the Snakefile gives for config mistakes."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from ocdec.config_errors import ConfigSources, config_error_line, config_key, yaml_error_line

SCHEMA = {"type": "object", "additionalProperties": False,
          "properties": {"quality": {"type": "object", "additionalProperties": False,
                                     "properties": {"min_stars": {"type": "integer"},
                                                    "max_ruwe": {"type": "number"}}},
                         "methods": {"type": "array", "items": {"enum": ["default", "thesis"]}}}}


def _error(config: dict) -> jsonschema.ValidationError:
    return next(iter(jsonschema.Draft7Validator(SCHEMA).iter_errors(config)))


def test_key_paths_read_as_the_docs_write_them() -> None:
    assert config_key(["quality", "min_stars"]) == "quality.min_stars"
    assert config_key(["methods", 0]) == "methods[0]"


def test_an_unknown_key_is_named_with_the_file_that_set_it(tmp_path: Path) -> None:
    defaults, mine = tmp_path / "config.yaml", tmp_path / "mine.yaml"
    defaults.write_text("quality: {min_stars: 100}\n")
    mine.write_text("quality: {min_star: 5}\n")
    sources = ConfigSources({}, [defaults, mine], [mine])
    line = config_error_line(_error({"quality": {"min_stars": 100, "min_star": 5}}), sources)
    assert line == (f"config: quality.min_star: unknown key, did you mean 'min_stars'? (known: "
                    f"min_stars, max_ruwe; set in {mine})")
    # a value from the command line says so
    line = config_error_line(_error({"methods": ["hdbscan"]}),
                             ConfigSources({"methods": ["hdbscan"]}, [defaults], []))
    assert line.startswith("config: methods[0]: 'hdbscan' is not one of") and \
        line.endswith("(set with --config)")


def test_a_yaml_error_gives_its_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("quality:\n  min_stars: [1, 2\n")
    with pytest.raises(yaml.YAMLError) as info:
        yaml.safe_load(bad.read_text())
    line = yaml_error_line(info.value, str(bad))
    assert line.startswith(f"{bad}: line ") and "not valid YAML" in line and "\n" not in line
