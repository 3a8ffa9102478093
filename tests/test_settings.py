"""Settings from config, one way (ocdec.settings), and the config schema kept equal to the settings
classes: every schema key is a settings field, every user-facing field is in the schema."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from ocdec.errors import OcdecError
from ocdec.settings import apply_mapping, from_mapping, settings_fields

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


# ----------------------------------------------------------------------------- the conversion


@dataclass(frozen=True)
class Inner:
    widths: tuple[int, ...] = (4, 2)
    rate: float = 0.1


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    count: int | None = None
    inner: Inner = field(default_factory=Inner)
    maybe: Inner | None = None


def test_from_mapping_defaults_nested_and_lists_to_tuples() -> None:
    assert from_mapping(Outer, None) == Outer()
    got = from_mapping(Outer, {"count": 3, "inner": {"widths": [8, 8, 2]}})
    assert got.count == 3 and got.name == "x"
    assert got.inner == Inner(widths=(8, 8, 2), rate=0.1)
    assert isinstance(got.inner.widths, tuple)
    # a nested mapping where the base holds None starts from the nested class's defaults
    assert from_mapping(Outer, {"maybe": {"rate": 0.5}}).maybe == Inner(rate=0.5)
    # apply_mapping keeps the base's other values, nested ones included
    base = Outer(name="y", inner=Inner(rate=0.3))
    assert apply_mapping(base, {"inner": {"widths": [1]}}) == Outer(name="y",
                                                                    inner=Inner((1,), 0.3))


def test_unknown_keys_are_refused_with_their_path() -> None:
    with pytest.raises(OcdecError, match=r"'characterize\.x\.inner\.width'") as err:
        from_mapping(Outer, {"inner": {"width": [1]}}, "characterize.x")
    assert "\n" not in str(err.value) and "widths" in str(err.value)  # one line, known keys
    with pytest.raises(OcdecError, match="'nme'"):
        from_mapping(Outer, {"nme": "z"})


def test_settings_fields_lists_nested_classes() -> None:
    assert settings_fields(Outer) == {"name": None, "count": None,
                                      "inner": {"widths": None, "rate": None},
                                      "maybe": {"widths": None, "rate": None}}


def test_simulate_and_quality_use_the_generic_conversion() -> None:
    from ocdec.data.quality import QualitySettings, quality_settings
    from ocdec.data.simulate import SimulateSettings, settings_from_mapping

    got = settings_from_mapping({"release": "dr2", "n_members": 10, "g_limit": None})
    assert got == SimulateSettings(release="dr2", n_members=10)  # null: the library's choice
    with pytest.raises(OcdecError, match=r"'simulate\.n_member'"):
        settings_from_mapping({"n_member": 10})
    assert quality_settings({"min_stars": 5, "ruwe_max": None}) == QualitySettings(min_stars=5)
    with pytest.raises(OcdecError, match=r"'quality\.ruwe'"):
        quality_settings({"min_stars": 5, "ruwe": 1.4})


# ----------------------------------------------------------------------------- schema vs classes

# Settings fields deliberately absent from the config schema, with the reason.
INTERNAL: dict[str, dict[str, str]] = {
    "characterize.default": {
        "seeds": "from characterize.seed and characterize.n_seeds",
        "threshold": "from characterize.threshold (shared by the methods)",
    },
    "characterize.thesis": {
        "features": "thesis mode is the thesis's feature set; another is not the reproduction",
        "scaling": "thesis mode is the thesis's min-max scaling",
    },
}
# Schema keys of a settings section that are not fields of its class, with who reads them.
SCHEMA_ONLY: dict[str, dict[str, str]] = {
    "simulate": {"seed": "simulate_region's seed",
                 "max_field_stars": "simulate_region thins the simulated field"},
    "parameters": {"method": "the workflow: whose members the parameters rule fits"},
}


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    assert ref.startswith("#/$defs/"), ref
    return SCHEMA["$defs"][ref.removeprefix("#/$defs/")]


def _sections() -> dict[str, tuple[dict[str, Any], type]]:
    """Config path -> (schema object, settings class) for every settings section."""
    from ocdec.data.quality import QualitySettings
    from ocdec.data.simulate import SimulateSettings
    from ocdec.methods.registry import get_method, method_names
    from ocdec.physics.parameters import ParametersSettings

    props = SCHEMA["properties"]
    out = {"simulate": (props["simulate"], SimulateSettings),
           "quality": (props["quality"], QualitySettings),
           "parameters": (props["parameters"], ParametersSettings)}
    for name in method_names():
        out[f"characterize.{name}"] = (props["characterize"]["properties"][name],
                                       get_method(name).settings_class)
    return out


# Fields whose annotation does not name their class (``dec: Any``): the class the schema's $ref
# stands for.
def _nested_classes() -> dict[str, type]:
    from ocdec.methods.dec import DecSettings

    return {"dec": DecSettings}


def _drift(where: str, schema: dict[str, Any], fields: dict[str, Any]) -> list[str]:
    problems = []
    keys = set(schema.get("properties", {}))
    internal = set(INTERNAL.get(where, {}))
    extra = set(SCHEMA_ONLY.get(where, {}))
    for key in sorted(keys - set(fields) - extra):
        problems.append(f"schema key {where}.{key} is no settings field")
    for key in sorted(set(fields) - keys - internal):
        problems.append(f"settings field {where}.{key} is not in the schema")
    for key in sorted(keys & set(fields)):
        node = _resolve(schema["properties"][key])
        nested = fields[key]
        if nested is None and "$ref" in schema["properties"][key]:
            nested = settings_fields(_nested_classes()[key])
        if nested is not None:
            assert node.get("additionalProperties") is False, f"{where}.{key}"
            problems += _drift(f"{where}.{key}", node, nested)
        elif node.get("type") == "object":
            problems.append(f"schema key {where}.{key} is an object, the field is not")
    return problems


def test_every_schema_key_is_a_settings_field_and_every_field_is_in_the_schema() -> None:
    problems = []
    for where, (schema, cls) in _sections().items():
        assert schema.get("additionalProperties") is False, where
        problems += _drift(where, schema, settings_fields(cls))
    assert not problems, "\n".join(problems)


def test_internal_fields_are_real_fields() -> None:
    """The exception lists stay honest: what they excuse exists."""
    sections = _sections()
    for where, names in INTERNAL.items():
        fields = settings_fields(sections[where][1])
        assert set(names) <= set(fields), where
    for where, names in SCHEMA_ONLY.items():
        assert set(names) <= set(sections[where][0]["properties"]), where


def test_schema_methods_equal_the_registry() -> None:
    from ocdec.methods.registry import method_names

    char = SCHEMA["properties"]["characterize"]["properties"]
    assert set(char["methods"]["items"]["enum"]) == set(method_names())
    for name in method_names():
        assert char.get(name, {}).get("type") == "object", f"no schema section for {name}"


def test_the_shipped_config_converts() -> None:
    """config/config.yaml's settings sections give settings instances (no key refused)."""
    from ocdec.characterize import method_settings
    from ocdec.data.quality import quality_settings
    from ocdec.data.simulate import settings_from_mapping

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    quality_settings(config["quality"])
    settings_from_mapping({k: v for k, v in config["simulate"].items()
                           if k not in SCHEMA_ONLY["simulate"]})
    for name in config["characterize"]["methods"]:
        method_settings(name, config["characterize"])
    from ocdec.physics.region import parameters_settings

    got = parameters_settings(config["parameters"])
    assert got.cmd.feh == 0.0 and got.zero_point is None
    with pytest.raises(OcdecError, match=r"'parameters\.cmd\.fe_h'"):
        parameters_settings({"cmd": {"fe_h": 0.0}})


# ----------------------------------------------------------------------------- adapters


def _adapter(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"_adapter_{name}",
                                                  REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # no Snakemake object: must not run anything
    return module


def test_adapters_import_and_run_the_library_entry_points(tmp_path: Path) -> None:
    import pandas as pd

    from ocdec.io import read_provenance

    log = [str(tmp_path / "log.txt")]
    region = {"id": "test", "ra": 120.0, "dec": -30.0, "radius_deg": 0.2, "pmra_prior": -3.0,
              "pmdec_prior": 4.0, "parallax_prior": 1.0}
    raw = tmp_path / "raw.parquet"
    _adapter("simulate").main(SimpleNamespace(
        log=log, output=SimpleNamespace(stars=str(raw)),
        params=SimpleNamespace(region=region, simulate={
            "seed": 3, "n_members": 20, "n_field": 300, "g_limit": None,
            "max_field_stars": 100})))
    frame = pd.read_parquet(raw)
    assert len(frame) == 120 and frame["true_member"].sum() == 20
    assert read_provenance(raw)["max_field_stars"] == 100

    local = tmp_path / "local.parquet"
    csv = tmp_path / "user.csv"
    frame.drop(columns="true_member").to_csv(csv, index=False)
    _adapter("read_local").main(SimpleNamespace(log=log, input=[str(csv)],
                                                output=SimpleNamespace(stars=str(local))))
    assert len(pd.read_parquet(local)) == 120
    assert read_provenance(local)["source"] == "local"

    stars, status = tmp_path / "stars.parquet", tmp_path / "status.json"
    _adapter("quality").main(SimpleNamespace(
        log=log, input=SimpleNamespace(stars=str(raw)),
        output=SimpleNamespace(stars=str(stars), status=str(status)),
        params=SimpleNamespace(quality={"min_stars": 10, "require_photometry": False}),
        wildcards=SimpleNamespace(region="test")))
    record = json.loads(status.read_text())
    assert record["region"] == "test" and record["status"] in ("ok", "skipped")
    assert read_provenance(stars)["quality"] == record
    assert read_provenance(stars)["source"] == "simulate"
