"""The Python API (``import ocdec``) and the README's example, run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ocdec
from conftest import REPO
from ocdec import products
from ocdec.methods.registry import REGISTRY, method_names


def test_import_is_light_and_names_resolve() -> None:
    code = ("import sys, ocdec; heavy = [m for m in ('jax', 'pandas', 'sklearn', 'matplotlib') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "scripts")})
    assert out.stdout.strip() == "[]"
    for name in ocdec.__all__:
        assert getattr(ocdec, name) is not None, name
    with pytest.raises(AttributeError):
        ocdec.no_such_thing  # noqa: B018


@pytest.mark.parametrize("first", ["find_members", "characterize", "import ocdec.characterize"])
def test_characterize_stays_callable_whatever_is_used_first(first: str) -> None:
    # importing the submodule ocdec.characterize binds the module under the function's name
    use = first if first.startswith("import") else f"ocdec.{first}"
    code = (f"import ocdec\n{use}\nimport ocdec.characterize\n"
            "try:\n    ocdec.characterize()\nexcept TypeError as err:\n    print(err)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "scripts")})
    # the function's own complaint about its arguments, not "'module' object is not callable"
    assert "missing" in out.stdout and "stars" in out.stdout, out.stdout


def test_products_layout_follows_the_registry() -> None:
    assert products.method_files(REGISTRY["thesis"].tables)["silhouette"] == "silhouette.tsv"
    assert set(products.method_files()) == {"members", "summary", "history", "groups"}
    summary = products.method_file("default", products.SUMMARY)
    assert summary == "results/{region}/default/summary.json"
    assert products.figure_file("overview", region="NGC_1") == "results/NGC_1/plots/overview.png"
    assert method_names()[:2] == ("thesis", "default") and "hdbscan" in method_names()


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README has no marked Python API example"
    return match.group(1)


@pytest.mark.realdata
@pytest.mark.slow
def test_readme_python_example_runs(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = readme_example()
    assert len(code.strip().splitlines()) <= 6
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(cwd)
    result = namespace["result"]
    assert 800 < int(result.member.sum()) < 1000
    assert abs(result.parameters["pmra"] + 36.0) < 0.3
    assert "members" in capsys.readouterr().out
