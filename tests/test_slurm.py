"""The SLURM profile on a real scheduler: a single-node cluster started by
scripts/slurm_single_node.sh runs a workflow through `--workflow-profile profiles/slurm`.

Runs only as root where Debian's SLURM packages are installed or installable with apt-get (as in
CI; set OCDEC_SKIP_SLURM=1 to opt out), and needs snakemake-executor-plugin-slurm. Checks that every
non-local job went through sbatch (Snakemake's submissions, slurmctld's batch-job RPCs and squeue
agree: one SLURM job per Snakemake job, or with OCDEC_SLURM_GROUPS=1 one per region, holding its
jobs on one CPU, and one per catalogue-wide job), that both runs' results equal a local run's, and
that every daemon the script started is gone afterwards. Dry runs, which need no scheduler, check
the profile's grouping for every method and its refusal of bad settings.
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


PLUGIN_MISSING = importlib.util.find_spec("snakemake_executor_plugin_slurm") is None
# the dry runs need the plugin, not a scheduler
NEEDS_PLUGIN = pytest.mark.skipif(PLUGIN_MISSING,
                                  reason="snakemake-executor-plugin-slurm is not installed")


def _reason_to_skip() -> str | None:
    if os.environ.get("OCDEC_SKIP_SLURM"):
        return "OCDEC_SKIP_SLURM is set"
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "needs root on Linux (installs Debian packages, writes /etc/slurm/slurm.conf)"
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return "needs apt-get (Debian or Ubuntu) to install slurmctld, slurmd, slurm-client, munge"
    if SLURM_CONF.exists() and CONF_MARKER not in SLURM_CONF.read_text(errors="replace"):
        return f"{SLURM_CONF} belongs to another SLURM installation; not touching it"
    if PLUGIN_MISSING:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    return None


@dataclass
class Case:
    """A workflow to run twice: locally (reference) and through SLURM."""

    name: str
    local_dir: Path
    slurm_dirs: dict[bool, Path]  # grouped or not: the run's directory
    args: list[str]  # snakemake arguments shared by the runs


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
    local_dir = tmp_path / "local"
    slurm_dirs = {False: tmp_path / "slurm", True: tmp_path / "slurm-grouped"}
    for d in (local_dir, *slurm_dirs.values()):
        d.mkdir()
    small_config = _small_config_fn()
    if small_config is not None:
        configs = [REPO / "config" / "config.yaml", REPO / "config" / "offline.yaml",
                   small_config(tmp_path)]
        args = ["-s", str(REPO / "Snakefile"), "--configfile", *map(str, configs)]
        return Case("offline default workflow (small config)", local_dir, slurm_dirs, args)
    for d in (local_dir, *slurm_dirs.values()):
        (d / "Snakefile").write_text(TINY_SNAKEFILE)
    return Case("two-rule test workflow", local_dir, slurm_dirs, [])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Jobs run `python -m snakemake` and rule scripts from this interpreter's environment.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for key in ("OCDEC_SLURM_ACCOUNT", "OCDEC_SLURM_PARTITION", "OCDEC_SLURM_GROUPS",
                "OCDEC_SLURM_CORES", "SNAKEMAKE_PROFILE"):
        env.pop(key, None)
    return env


def _snakemake(workdir: Path, args: list[str], grouped: bool = False
               ) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "snakemake", *args]
    env = {**_env(), **({"OCDEC_SLURM_GROUPS": "1"} if grouped else {})}
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=SNAKEMAKE_TIMEOUT_S)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class LoggedJob:
    """A job as Snakemake's log (or a dry run) prints it."""

    rule: str
    jobid: int
    local: bool
    group: int | None  # the group job it belongs to (its header's index in the log), or None
    region: str | None = None


GROUP_HEADER = re.compile(r"^\[[^\]]*\] Group job (\w+) \(jobs in lexicogr\. order\):$")


def _logged_jobs(text: str) -> tuple[list[LoggedJob], list[str]]:
    """The jobs of a Snakemake log or dry run, and the names of its group jobs in order: a
    group's jobs are printed indented under its header."""
    jobs: list[LoggedJob] = []
    groups: list[str] = []
    job: LoggedJob | None = None
    for line in text.splitlines():
        header = GROUP_HEADER.match(line)
        if header:
            groups.append(header.group(1))
            job = None
            continue
        rule = re.match(r"^( *)(local)?rule (\w+):$", line)
        if rule:
            grouped = bool(rule.group(1)) and bool(groups)
            job = LoggedJob(rule.group(3), -1, bool(rule.group(2)),
                            len(groups) - 1 if grouped else None)
            jobs.append(job)
        elif job is not None and (found := re.match(r"^ +jobid: (\d+)$", line)):
            job.jobid = int(found.group(1))
        elif job is not None and (found := re.match(r"^ +wildcards: .*\bregion=([^,\s]+)", line)):
            job.region = found.group(1)
    return jobs, groups


def _jobs_from_log(text: str) -> tuple[list[LoggedJob], list[str], dict[str, list[int]], str]:
    """(jobs, group names, {Snakemake job id or group job id: its SLURM job ids}, SLURM run
    id) from the main Snakemake log; a group job's id is the uuid its submission line names. A
    retried group is printed again (its jobs once more, under a new header) and submitted again
    under the same uuid: its repeats are dropped, its SLURM ids kept."""
    jobs, groups = _logged_jobs(text)
    seen: dict[frozenset[int], int] = {}
    for g in range(len(groups)):
        seen.setdefault(frozenset(job.jobid for job in jobs if job.group == g), g)
    first = set(seen.values())
    jobs = [job for job in jobs if job.group is None or job.group in first]
    renumber = {g: k for k, g in enumerate(sorted(first))}
    for job in jobs:
        if job.group is not None:
            job.group = renumber[job.group]
    submitted: dict[str, list[int]] = {}
    for key, slurm_id in re.findall(r"^Job (\S+) has been submitted with SLURM jobid (\d+)",
                                    text, re.M):
        submitted.setdefault(key, []).append(int(slurm_id))
    run_id = re.search(r"SLURM run ID: (\S+)", text)
    return jobs, [groups[g] for g in sorted(first)], submitted, run_id.group(1) if run_id else ""


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


@NEEDS_PLUGIN
@pytest.mark.parametrize("grouped", [True, False])
def test_profile_sends_each_regions_jobs_as_one_slurm_job(tmp_path: Path, grouped: bool) -> None:
    """A dry run through the profile, every method configured: with OCDEC_SLURM_GROUPS=1 each
    region's jobs but its reference look-up (a local rule) form one group job; by default none
    do."""
    from ocdec.methods.registry import method_names

    small_config = _small_config_fn()
    if small_config is None:
        pytest.skip("tests/test_workflow.py's small configuration is not there")
    methods = tmp_path / "methods.yaml"
    methods.write_text(f"characterize: {{methods: [{', '.join(method_names())}]}}\n")
    configs = [REPO / "config" / "config.yaml", REPO / "config" / "offline.yaml",
               small_config(tmp_path), methods]
    run = _snakemake(tmp_path, ["-s", str(REPO / "Snakefile"), "-n", "--workflow-profile",
                                str(PROFILE), "--configfile", *map(str, configs)], grouped)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs, groups = _logged_jobs(run.stdout)
    per_region = [job for job in jobs if job.region is not None]
    regions = {job.region for job in per_region}
    assert len(regions) == 2 and {job.rule for job in jobs} >= {
        f"characterize_{m}" for m in method_names()}
    if not grouped:
        assert not groups and all(job.group is None for job in jobs)
        return
    assert groups == ["region"] * len(regions)
    alone = {job.rule for job in per_region if job.group is None}
    assert alone == {"reference"}, alone
    for g in range(len(groups)):
        members = [job for job in jobs if job.group == g]
        assert len({job.region for job in members}) == 1
        assert {job.rule for job in members} == {"simulate", "quality", "plots", "parameters",
                                                 "compare", *(f"characterize_{m}"
                                                              for m in method_names())}
    # the catalogue-wide jobs stay jobs of their own
    assert {job.rule for job in jobs if job.region is None} >= {"summary", "parameters_catalogue"}


@NEEDS_PLUGIN
@pytest.mark.parametrize(("name", "value", "says"), [
    ("OCDEC_SLURM_GROUPS", "maybe", "OCDEC_SLURM_GROUPS='maybe': give 1 (on) or 0 (off)"),
    ("OCDEC_SLURM_CORES", "0", "OCDEC_SLURM_CORES='0': give a whole number of CPUs, at least 1"),
])
def test_profile_refuses_a_bad_setting_naming_it(tmp_path: Path, name: str, value: str,
                                                 says: str) -> None:
    (tmp_path / "Snakefile").write_text(TINY_SNAKEFILE)
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--workflow-profile",
                          str(PROFILE)], cwd=tmp_path, env={**_env(), "OCDEC_SLURM_GROUPS": "1",
                                                            name: value},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and says in run.stderr, run.stderr[-2000:]


@pytest.mark.slurm
@pytest.mark.slow
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
    runs: dict[bool, tuple[str, str]] = {}  # grouped or not: (its log, squeue after it)
    try:
        assert started.returncode == 0, f"cluster did not start:\n{started.stderr[-3000:]}"
        assert set(pids) == {"munged", "slurmctld", "slurmd"}
        for grouped, workdir in case.slurm_dirs.items():
            run = _snakemake(workdir, ["--workflow-profile", str(PROFILE), *case.args], grouped)
            logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
            assert run.returncode == 0, (f"SLURM run of the {case.name} (grouped: {grouped}) "
                                         f"failed:\n{run.stderr[-6000:]}")
            queue = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%j|%k|%T|%C"],
                                   capture_output=True, text=True, check=True, timeout=30)
            runs[grouped] = (logs[-1].read_text() if logs else "", queue.stdout)
        ctld_log = (state / "slurmctld.log").read_text()
    finally:
        stopped = subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True,
                                 text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert not [name for name, pid in pids.items() if _alive(pid)], "a daemon outlived 'stop'"
    assert not SLURM_CONF.exists() or CONF_MARKER not in SLURM_CONF.read_text()

    batch_ids = {int(i) for i in re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", ctld_log)}
    counts = {}
    for grouped, (log_text, queue) in runs.items():
        counts[grouped] = _check_submissions(case, grouped, log_text, queue, batch_ids)
        assert _compare_results(case.local_dir, case.slurm_dirs[grouped]) >= 1
    if case.args:  # the workflow: a SLURM job per region and summary beats one per rule
        assert counts[True] < counts[False], counts


def _check_submissions(case: Case, grouped: bool, log_text: str, queue: str,
                       batch_ids: set[int]) -> int:
    """Every non-local Snakemake job of a SLURM run was submitted, and only those: on its own,
    or (grouped) in the one group job of its region, on one CPU. Returns the SLURM jobs."""
    jobs, groups, submitted, run_id = _jobs_from_log(log_text)
    remote = [job for job in jobs if not job.local]
    assert remote, "no job ran remotely"
    assert run_id, "the SLURM executor did not run"
    alone = {str(job.jobid): job.rule for job in remote if job.group is None}
    by_group = [k for k in submitted if k not in alone]  # uuids, in the order first submitted
    assert set(alone) <= set(submitted)
    assert len(by_group) == len(groups), (by_group, groups)
    if grouped and case.args:
        assert groups and set(groups) == {"region"}
        regions = [{job.region for job in remote if job.group == g} for g in range(len(groups))]
        assert all(len(r) == 1 for r in regions) and len({*map(frozenset, regions)}) == len(groups)
    else:
        assert not groups, f"grouped without OCDEC_SLURM_GROUPS=1: {groups}"
    slurm_ids = [i for ids in submitted.values() for i in ids]
    assert len(set(slurm_ids)) == len(slurm_ids)
    # slurmctld received each as a batch job (sbatch) ...
    assert set(slurm_ids) <= batch_ids
    # ... and squeue saw each complete, under the run's job name, with the rule (a group's name
    # and rules) in the comment; a region's job on one CPU
    seen = {int(i): (name, comment, st, int(cpus)) for i, name, comment, st, cpus in
            (line.split("|") for line in queue.splitlines() if line)}
    names = dict(zip(by_group, groups, strict=True))
    for key, ids in submitted.items():
        name, comment, st, cpus = seen[ids[-1]]
        assert (name, st) == (run_id, "COMPLETED"), (ids, name, st)
        assert comment.startswith(f"rule_{alone.get(key) or names[key] + '_'}"), (ids, comment)
        if key in names:
            assert cpus == 1, (ids, cpus)
    return len(submitted)
