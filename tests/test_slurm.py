"""The SLURM profile on a real scheduler: a single-node cluster started by
scripts/slurm_single_node.sh runs a workflow through `--workflow-profile profiles/slurm`.

Runs only as root where Debian's SLURM packages are installed or installable with apt-get (as in
CI; set OCDEC_SKIP_SLURM=1 to opt out), and needs snakemake-executor-plugin-slurm. Checks that every
non-local job went through sbatch (Snakemake's submissions, slurmctld's batch-job RPCs and squeue
agree, one SLURM job per Snakemake job), that the results equal a local run's, and that every daemon
the script started is gone afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm_single_node.sh"
PROFILE = REPO / "profiles" / "slurm"
SLURM_CONF = Path("/etc/slurm/slurm.conf")
CONF_MARKER = "written by ocdec scripts/slurm_single_node.sh"
SNAKEMAKE_TIMEOUT_S = 1200

# The offline default workflow on the small configuration of tests/test_workflow.py (two simulated
# regions, one of them skipped), when that exists; else a two-rule workflow (three parallel jobs and
# one gathering job) that proves the same path (forced with OCDEC_SLURM_TEST_TINY=1).
WORKFLOW_TEST = REPO / "tests" / "test_workflow.py"
TINY_SNAKEFILE = """\
localrules: all

rule all:
    input: "results/total.txt"

rule square:
    output: "results/sq/{n}.txt"
    threads: 1
    resources: mem_mb=200, runtime=5
    shell: "echo $(( {wildcards.n} * {wildcards.n} )) > {output}"

rule total:
    input: expand("results/sq/{n}.txt", n=range(1, 4))
    output: "results/total.txt"
    resources: mem_mb=200, runtime=5
    shell: "awk '{{s += $1}} END {{print s}}' {input} > {output}"
"""
# Values that legitimately differ between two runs of the same workflow.
VOLATILE_KEYS = {"runtime_s", "stages", "seconds", "utc", "versions", "created", "host"}


def _reason_to_skip() -> str | None:
    if os.environ.get("OCDEC_SKIP_SLURM"):
        return "OCDEC_SKIP_SLURM is set"
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "needs root on Linux (installs Debian packages, writes /etc/slurm/slurm.conf)"
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return "needs apt-get (Debian or Ubuntu) to install slurmctld, slurmd, slurm-client, munge"
    if SLURM_CONF.exists() and CONF_MARKER not in SLURM_CONF.read_text(errors="replace"):
        return f"{SLURM_CONF} belongs to another SLURM installation; not touching it"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    return None


@dataclass
class Case:
    """A workflow to run twice: locally (reference) and through SLURM."""

    name: str
    local_dir: Path
    slurm_dir: Path
    args: list[str]  # snakemake arguments shared by both runs


def _small_config_fn() -> Callable[[Path], Path] | None:
    """tests/test_workflow.py's `small_config(tmp_path) -> config path`, when it is there."""
    if os.environ.get("OCDEC_SLURM_TEST_TINY") or not (REPO / "workflow" / "Snakefile").exists():
        return None
    try:
        spec = importlib.util.spec_from_file_location("_ocdec_test_workflow", WORKFLOW_TEST)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except (FileNotFoundError, ImportError, AttributeError):
        return None
    return getattr(module, "small_config", None)


def _make_case(tmp_path: Path) -> Case:
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    local_dir.mkdir()
    slurm_dir.mkdir()
    small_config = _small_config_fn()
    if small_config is not None:
        configs = [REPO / "config" / "config.yaml", REPO / "config" / "offline.yaml",
                   small_config(tmp_path)]
        args = ["-s", str(REPO / "Snakefile"), "--configfile", *map(str, configs)]
        return Case("offline default workflow (small config)", local_dir, slurm_dir, args)
    for d in (local_dir, slurm_dir):
        (d / "Snakefile").write_text(TINY_SNAKEFILE)
    return Case("two-rule test workflow", local_dir, slurm_dir, [])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Jobs run `python -m snakemake` and rule scripts from this interpreter's environment.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for key in ("OCDEC_SLURM_ACCOUNT", "OCDEC_SLURM_PARTITION", "SNAKEMAKE_PROFILE"):
        env.pop(key, None)
    return env


def _snakemake(workdir: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "snakemake", *args]
    return subprocess.run(cmd, cwd=workdir, env=_env(), capture_output=True, text=True,
                          timeout=SNAKEMAKE_TIMEOUT_S)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _jobs_from_log(text: str) -> tuple[dict[int, str], dict[int, str], dict[int, int], str]:
    """(remote jobs {jobid: rule}, local jobs, {jobid: SLURM job id}, SLURM run id) from the
    main Snakemake log."""
    remote: dict[int, str] = {}
    local: dict[int, str] = {}
    for m in re.finditer(r"^(local)?rule (\w+):\n(?:    .*\n)*?    jobid: (\d+)$", text, re.M):
        (local if m.group(1) else remote)[int(m.group(3))] = m.group(2)
    submitted = {int(a): int(b) for a, b in
                 re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", text)}
    run_id = re.search(r"SLURM run ID: (\S+)", text)
    return remote, local, submitted, run_id.group(1) if run_id else ""


def _strip_volatile(value: object) -> object:
    if isinstance(value, dict):
        return {k: _strip_volatile(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_strip_volatile(v) for v in value]
    return value


def _compare_results(local: Path, slurm: Path) -> int:
    """Assert that the results of the two runs are equal; returns the number of files compared."""
    files = sorted(p.relative_to(local) for p in (local / "results").rglob("*") if p.is_file())
    assert files, "the local run wrote no results"
    other = sorted(p.relative_to(slurm) for p in (slurm / "results").rglob("*") if p.is_file())
    assert files == other, "the SLURM run wrote a different set of result files"
    for rel in files:
        a, b = local / rel, slurm / rel
        if rel.suffix == ".parquet":
            pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b), obj=str(rel))
        elif rel.suffix == ".json":
            assert _strip_volatile(json.loads(a.read_text())) == _strip_volatile(
                json.loads(b.read_text())), rel
        elif rel.suffix in {".png", ".pdf", ".svg", ".html"} or "benchmark" in rel.parts:
            assert b.stat().st_size > 0, rel  # rendering and timing metadata may differ
        elif rel.name == "summary.tsv" or rel.suffix in {".tsv", ".csv"}:
            fa, fb = (pd.read_csv(p, sep="\t" if p.suffix == ".tsv" else ",") for p in (a, b))
            drop = [c for c in fa.columns if c in VOLATILE_KEYS or c.endswith("runtime_s")]
            pd.testing.assert_frame_equal(fa.drop(columns=drop), fb.drop(columns=drop),
                                          obj=str(rel))
        else:
            assert a.read_bytes() == b.read_bytes(), rel
    return len(files)


@pytest.mark.skipif(_reason_to_skip() is not None, reason=str(_reason_to_skip()))
def test_workflow_runs_through_slurm_and_matches_local(tmp_path: Path) -> None:
    state = tmp_path / "slurm-state"
    env = {**_env(), "OCDEC_SLURM_STATE": str(state)}
    install = subprocess.run(["bash", str(SCRIPT), "install"], env=env, capture_output=True,
                             text=True, timeout=900)
    if install.returncode != 0:
        pytest.skip(f"could not install SLURM (no package registry?): {install.stderr[-500:]}")

    case = _make_case(tmp_path)
    local = _snakemake(case.local_dir, ["--cores", "2", *case.args])
    assert local.returncode == 0, f"local run failed:\n{local.stderr[-4000:]}"

    started = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True,
                             text=True, timeout=300)
    pid_lines = (state / "pids").read_text().split() if (state / "pids").exists() else []
    pids = {name: int(pid) for name, pid in zip(pid_lines[::2], pid_lines[1::2], strict=True)}
    try:
        assert started.returncode == 0, f"cluster did not start:\n{started.stderr[-3000:]}"
        assert set(pids) == {"munged", "slurmctld", "slurmd"}
        run = _snakemake(case.slurm_dir, ["--workflow-profile", str(PROFILE), *case.args])
        logs = sorted((case.slurm_dir / ".snakemake" / "log").glob("*.snakemake.log"))
        log_text = logs[-1].read_text() if logs else ""
        assert run.returncode == 0, f"SLURM run of the {case.name} failed:\n{run.stderr[-6000:]}"
        queue = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%j|%k|%T"],
                               capture_output=True, text=True, check=True, timeout=30).stdout
        ctld_log = (state / "slurmctld.log").read_text()
    finally:
        stopped = subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True,
                                 text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert not [name for name, pid in pids.items() if _alive(pid)], "a daemon outlived 'stop'"
    assert not SLURM_CONF.exists() or CONF_MARKER not in SLURM_CONF.read_text()

    remote, local_jobs, submitted, run_id = _jobs_from_log(log_text)
    assert remote, "no job ran remotely"
    assert run_id, "the SLURM executor did not run"
    # Every non-local Snakemake job was submitted once, and only those.
    assert set(submitted) == set(remote)
    assert len(set(submitted.values())) == len(submitted)
    # slurmctld received each as a batch job (sbatch) ...
    batch_ids = {int(i) for i in re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", ctld_log)}
    assert set(submitted.values()) <= batch_ids
    # ... and squeue saw each complete, under the run's job name, with the rule in the comment.
    seen = {int(i): (name, comment, st) for i, name, comment, st in
            (line.split("|") for line in queue.splitlines() if line)}
    for jobid, slurm_id in submitted.items():
        name, comment, st = seen[slurm_id]
        assert (name, st) == (run_id, "COMPLETED"), (slurm_id, name, st)
        assert comment.startswith(f"rule_{remote[jobid]}"), (slurm_id, comment)
    assert _compare_results(case.local_dir, case.slurm_dir) >= 1
