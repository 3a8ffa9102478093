"""scripts/check_gpu.py: exits clearly without a GPU, and its comparison works (CPU against CPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jax
import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_gpu.py"


@pytest.fixture(scope="module")
def check_gpu():
    spec = importlib.util.spec_from_file_location("check_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _has_gpu() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


@pytest.mark.skipif(_has_gpu(), reason="a GPU is visible; the no-GPU exit cannot be seen")
def test_without_gpu_it_says_so_and_exits_3(check_gpu, capsys) -> None:
    assert check_gpu.main([]) == check_gpu.NO_GPU_EXIT
    assert "no GPU visible" in capsys.readouterr().err


def test_simulated_field_has_a_compact_cluster(check_gpu) -> None:
    x, truth = check_gpu.simulated_features(5000, 0.05, seed=1)
    assert x.shape == (5000, 3) and x.dtype == np.float32
    assert truth.sum() == 250
    # members sit together in feature space, far tighter than the field
    assert np.all(x[truth].std(axis=0) < 0.25 * x[~truth].std(axis=0))


@pytest.mark.slow  # two DEC trainings with compilation: ~10-50 s on 2 busy cores
def test_same_device_twice_agrees(check_gpu, capsys) -> None:
    args = ["--allow-cpu", "--stars", "3000", "--clusters", "3", "--pretrain-epochs", "2",
            "--cluster-epochs", "2"]
    if _has_gpu():
        pytest.skip("a GPU is visible; run the script itself")
    assert check_gpu.main(args) == 0
    out = capsys.readouterr().out
    assert "adjusted Rand index of labels 1.0000" in out and "OK:" in out


def test_jaccard_of_member_sets(check_gpu) -> None:
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    assert check_gpu.jaccard(a, b) == pytest.approx(1 / 3)
    assert check_gpu.jaccard(a, a) == 1.0
    assert check_gpu.jaccard(~(a | True), ~(a | True)) == 1.0


def test_gpu_report_runs_every_step_and_counts_the_failures(tmp_path) -> None:
    """scripts/gpu_report.sh with a stand-in Python that fails the check: every step still runs,
    each has its log and the exit status is the number of failed steps (here the check alone)."""
    import os
    import subprocess

    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho \"ran $*\"\n"
                    "case \"$*\" in *check_gpu.py*) exit 1;; esac\nexit 0\n")
    fake.chmod(0o755)
    out = tmp_path / "report"
    done = subprocess.run(["bash", str(SCRIPT.with_name("gpu_report.sh")), str(out), "5000"],
                          cwd=SCRIPT.parents[1], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": str(fake)}, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    steps = ("check_gpu", "region_gpu", "region_gpu_warm", "flops_gpu", "region_cpu")
    for step in steps:
        assert f"== {step}: exit" in done.stdout
        assert (out / f"{step}.log").read_text().startswith("ran ")
    assert "--rows 5000" in (out / "flops_gpu.log").read_text()
    assert "JAX_PLATFORMS" not in (out / "region_cpu.log").read_text()  # env, not an argument
    assert "1 step(s) failed" in done.stdout
