"""scripts/check_gpu.py: exits clearly without a GPU, and its comparison works (CPU against CPU)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
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


@pytest.mark.parametrize(("args", "message"), [
    (["--stars", "-5"], "argument --stars: expected a positive integer, got '-5'"),
    (["--stars", "0"], "argument --stars: expected a positive integer, got '0'"),
    (["--clusters", "0"], "argument --clusters: expected a positive integer, got '0'"),
    (["--member-fraction", "-0.1"], "argument --member-fraction: expected a number within (0, 1]"),
    (["--member-fraction", "nan"], "argument --member-fraction: expected a number within (0, 1]"),
    (["--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
    (["--pretrain-epochs", "-2"], "argument --pretrain-epochs: expected an integer >= 0"),
    (["--cluster-epochs", "x"], "argument --cluster-epochs: expected an integer >= 0, got 'x'"),
    (["--min-ari", "0"], "argument --min-ari: expected a number within (0, 1], got '0'"),
    (["--min-jaccard", "1.5"], "argument --min-jaccard: expected a number within (0, 1]"),
    (["--stars", "10", "--member-fraction", "0.01"], "gives no cluster member"),
    (["--stars", "4", "--member-fraction", "0.5", "--clusters", "6"],
     "--clusters 6 is more than --stars 4"),
])
def test_bad_numbers_are_argparse_errors_not_tracebacks(check_gpu, capsys, args,
                                                        message) -> None:
    """--stars -5 --allow-cpu ended in "ValueError: negative dimensions"; now every number is
    checked as the options are read: exit 2, the last line naming the option."""
    with pytest.raises(SystemExit) as stop:
        check_gpu.main([*args, "--allow-cpu"])
    assert stop.value.code == 2
    captured = capsys.readouterr()
    last = captured.err.strip().splitlines()[-1]
    assert ": error: " in last and message in last, last  # argparse: "PROG: error: ..."
    assert "Traceback" not in captured.err and "devices" not in captured.out  # stopped at once


def test_jaccard_of_member_sets(check_gpu) -> None:
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    assert check_gpu.jaccard(a, b) == pytest.approx(1 / 3)
    assert check_gpu.jaccard(a, a) == 1.0
    assert check_gpu.jaccard(~(a | True), ~(a | True)) == 1.0


def _fake_python(tmp_path: Path, backend: str, slow: str = "") -> Path:
    """A stand-in Python: says JAX's backend is ``backend``, fails scripts/check_gpu.py, sleeps
    in any step whose arguments hold ``slow`` and passes every other step."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\n"
                    f"case \"$*\" in *default_backend*) echo {backend}; exit 0;; esac\n"
                    "echo \"ran $*\"\n"
                    + (f"case \"$*\" in *{slow}*) sleep 60;; esac\n" if slow else "")
                    + "case \"$*\" in *check_gpu.py*) exit 1;; esac\nexit 0\n")
    fake.chmod(0o755)
    return fake


# Runs a command with SIGINT at its default: bash cannot trap a signal ignored when it starts,
# and a test run started in the background without job control (nohup ... &) ignores SIGINT.
_DEFAULT_SIGINT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                   "os.execvp(sys.argv[1], sys.argv[1:])")


def _report(tmp_path: Path, fake: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _DEFAULT_SIGINT,
                             "bash", str(SCRIPT.with_name("gpu_report.sh")),
                             str(tmp_path / "report"), "5000"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHON": str(fake)}, **kwargs)


def test_gpu_report_runs_every_step_and_counts_the_failures(tmp_path) -> None:
    """scripts/gpu_report.sh (run from elsewhere) with a stand-in Python that fails the check:
    every step still runs, each has its log and the exit status is the number of failed steps
    (here the check alone)."""
    run = _report(tmp_path, _fake_python(tmp_path, "gpu"))
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 1, stderr
    out = tmp_path / "report"
    for step in ("check_gpu", "region_gpu", "region_gpu_warm", "flops_gpu", "region_cpu"):
        assert f"== {step}: exit" in stdout
        assert (out / f"{step}.log").read_text().startswith("ran ")
    assert "--rows 5000" in (out / "flops_gpu.log").read_text()
    assert "JAX_PLATFORMS" not in (out / "region_cpu.log").read_text()  # env, not an argument
    assert "1 step(s) failed, 0 skipped" in stdout


def test_gpu_report_without_a_gpu_runs_only_the_check(tmp_path) -> None:
    """Where JAX's backend is the CPU the "GPU" timings would be the CPU's under a GPU's name:
    they are skipped, and counted."""
    run = _report(tmp_path, _fake_python(tmp_path, "cpu"))
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 5, stderr
    assert "== check_gpu: exit 1" in stdout
    assert "== flops_gpu: skipped, JAX's default backend is 'cpu', not gpu" in stdout
    assert "1 step(s) failed, 4 skipped" in stdout
    assert not (tmp_path / "report" / "region_gpu.log").exists()


def test_gpu_report_names_a_python_without_jax(tmp_path) -> None:
    """A Python that cannot import JAX is named, with what to do, before any step runs."""
    run = _report(tmp_path, _fake_python(tmp_path, ""))
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 64
    assert "cannot import jax: set PYTHON" in stderr
    assert not (tmp_path / "report" / "check_gpu.log").exists()


def test_gpu_report_stops_on_an_interrupt(tmp_path) -> None:
    """Ctrl-C (SIGINT to the script's process group) stops the step in progress and the script,
    though timeout runs each step in a process group of its own."""
    import signal
    import time

    run = _report(tmp_path, _fake_python(tmp_path, "gpu", slow="region"),
                  start_new_session=True)
    log = tmp_path / "report" / "region_gpu.log"
    deadline = time.monotonic() + 30
    while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(run.pid, signal.SIGINT)
    stdout, _ = run.communicate(timeout=20)
    assert run.returncode == 130
    assert "gpu_report: interrupted" in stdout and "flops_gpu" not in stdout


@pytest.mark.parametrize("args", [[], ["--bogus"]])
def test_gpu_report_usage(args) -> None:
    """A usage error exits 64, apart from any count of failed steps."""
    done = subprocess.run(["bash", str(SCRIPT.with_name("gpu_report.sh")), *args],
                          capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 64 and "usage: scripts/gpu_report.sh OUTDIR" in done.stderr


def test_gpu_report_help_is_its_header() -> None:
    done = subprocess.run(["bash", str(SCRIPT.with_name("gpu_report.sh")), "--help"],
                          capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0
    assert "check_gpu.py: DEC trained on the CPU and on the GPU agree" in done.stdout
    assert "Exit status" in done.stdout and "set -u" not in done.stdout
