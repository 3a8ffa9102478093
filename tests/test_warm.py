"""Rule jobs forked from the warm interpreter (ocdec.warm): a job runs in a child of the server
with its own streams, directory, arguments, environment and exit status; a job the server cannot
take (no server, another environment) runs in its own process; a cancelled job's child ends."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ocdec import warm

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

JOB = '''
from ocdec.warm import delegate

delegate()

import gc, json, os, sys, time

from threadpoolctl import threadpool_info

blas = [p["num_threads"] for p in threadpool_info() if p["internal_api"] == "openblas"]
loops = sys.modules.get("ocdec.methods.default.star_loops")
filters = sys.modules.get("ocdec.methods.default.map_filters")
print(json.dumps({"loops": None if loops is None else len(loops.class_histograms.overloads),
                  "filters": None if filters is None else
                  [len(filters._box_rows.overloads), len(filters._gaussian_cells.overloads),
                   len(filters._block_max.overloads), len(filters._maxima.overloads),
                   len(filters._cells_to_rows.overloads)],
                  "child": os.environ.get("OCDEC_WARM_CHILD"), "pid": os.getpid(),
                  "cwd": os.getcwd(), "argv": sys.argv[1:], "jax": "jax" in sys.modules,
                  "blas": blas, "tmpdir": os.environ.get("TMPDIR"),
                  "frozen": gc.get_freeze_count()}))
print("a line on stderr", file=sys.stderr)
mode = sys.argv[1]
if mode == "fail":
    raise ValueError("boom")
if mode == "exit":
    raise SystemExit(3)
if mode == "bigexit":
    raise SystemExit(2**31 + 3)  # the OS keeps the low 8 bits: 3
if mode == "thread":  # a fresh interpreter joins its non-daemon threads before it exits
    import threading

    def late():
        time.sleep(0.5)
        with open(sys.argv[2], "w") as handle:
            handle.write("joined")

    threading.Thread(target=late).start()
if mode == "cycle":  # garbage in a reference cycle: collected as the job exits
    class Node:
        def __del__(self):
            with open(sys.argv[2], "w") as handle:
                handle.write("collected")

    node = Node()
    node.self = node
    del node
if mode == "atexit":  # its own exit functions run; the libraries' cache clearers do not
    import atexit

    import jax._src.api

    def mark(name):
        with open(sys.argv[2] + name, "w") as handle:
            handle.write(name)

    atexit.register(mark, ".own")
    jax._src.api.clear_caches = lambda: mark(".jax")  # what jax's clean_up calls
if mode == "sleep":
    try:
        with open(sys.argv[2], "w") as handle:
            handle.write(str(os.getpid()))
        time.sleep(120)
    finally:  # a cancelled job cleans up, as on Ctrl-C in a fresh process
        with open(sys.argv[2] + ".cleaned", "w") as handle:
            handle.write("cleaned")
'''


@dataclass
class Server:
    log: Path
    env: dict[str, str]  # the environment it started in, as Snakemake's jobs share theirs


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("warm") / "warm.log"
    path = warm.start(log_file=log)
    assert path is not None
    env = dict(os.environ)  # pytest's per-test variables change later: a job sends this one
    try:
        # start() returned at once; the server holds the lock until it listens
        lock = path.with_name(warm.IMPORTING)
        assert not path.exists() and warm._importing(lock)
        warm._await_imports(path, wait_s=120)
        assert path.exists(), f"the server never listened: {log.read_text()}"
        assert not warm._importing(lock) and not lock.exists()
        yield Server(log, env)
    finally:
        warm.stop()
    assert not path.exists(), "the server left its socket behind"


def run_job(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    return subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, text=True,
                          capture_output=True, env=env, timeout=120)


def info(proc: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(proc.stdout.splitlines()[0])


def test_a_job_runs_forked_with_its_own_streams_arguments_and_status(server: Server,
                                                                     tmp_path: Path) -> None:
    proc = run_job(tmp_path, "ok", "second", env=server.env)
    got = info(proc)
    assert proc.returncode == 0, proc.stderr
    assert got["child"] == "1" and got["jax"], "the job did not run in the warm interpreter"
    assert got["loops"] == 2, "the peak search's compiled loops were not loaded before the fork"
    # float32 and float64 maps, the Gaussian with the search's read-only kernels
    assert got["filters"] == [2, 2, 1, 1, 1], "the peak search's compiled filters were not loaded"
    assert got["pid"] != os.getpid()
    assert got["cwd"] == str(tmp_path) and got["argv"] == ["ok", "second"]
    assert proc.stderr.strip() == "a line on stderr"
    assert "job.py, status 0" in server.log.read_text()

    exited = run_job(tmp_path, "exit", env=server.env)
    assert info(exited)["child"] == "1" and exited.returncode == 3
    failed = run_job(tmp_path, "fail", env=server.env)
    assert info(failed)["child"] == "1" and failed.returncode == 1
    assert "ValueError: boom" in failed.stderr
    assert "warm.py" not in failed.stderr  # the traceback starts at the job's script
    big = run_job(tmp_path, "bigexit", env=server.env)
    assert info(big)["child"] == "1" and big.returncode == 3
    joined = tmp_path / "joined"
    threaded = run_job(tmp_path, "thread", str(joined), env=server.env)
    assert info(threaded)["child"] == "1" and threaded.returncode == 0
    assert joined.read_text() == "joined"
    # the imports are out of the collector's reach (a job's collections do not walk them), but
    # the job's own garbage is still collected as it exits
    assert got["frozen"] > 10_000
    collected = tmp_path / "collected"
    cycle = run_job(tmp_path, "cycle", str(collected), env=server.env)
    assert info(cycle)["child"] == "1" and cycle.returncode == 0, cycle.stderr
    assert collected.read_text() == "collected"
    # the job's own exit functions run, not the libraries' that only empty their caches
    ended = tmp_path / "ended"
    exits = run_job(tmp_path, "atexit", str(ended), env=server.env)
    assert info(exits)["child"] == "1" and exits.returncode == 0, exits.stderr
    assert (tmp_path / "ended.own").is_file() and not (tmp_path / "ended.jax").exists()
    # the server is still there for the next job
    assert info(run_job(tmp_path, "ok", env=server.env))["child"] == "1"


ADAPTER = '''
from ocdec.warm import delegate

delegate()

import gc, json, os

importing = gc.isenabled()

import pandas  # an adapter's imports, with the collector off in a job's own process

from ocdec.runner import run_rule


def main(smk):
    print(json.dumps({"child": os.environ.get("OCDEC_WARM_CHILD"), "importing": importing,
                      "running": gc.isenabled(), "frozen": gc.get_freeze_count()}))


run_rule(main, None)
'''


def test_an_adapter_imports_without_the_collector_and_runs_with_it(server: Server,
                                                                  tmp_path: Path) -> None:
    """A rule adapter's imports run with the garbage collector off (it walked their growing
    heap again and again); run_rule sets their objects out of its reach and turns it back on,
    in a job's own process and in the warm interpreter's child alike."""
    script = tmp_path / "adapter.py"
    script.write_text(ADAPTER)
    for env, child in ((server.env, "1"), ({**server.env, warm.ENV: str(tmp_path / "none")},
                                           None)):
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, text=True,
                              capture_output=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        assert got["child"] == child
        assert got["importing"] is False and got["running"] is True
        assert got["frozen"] > 10_000  # pandas's objects, or the server's imports
    # imported as a module (a test reading an adapter's functions), even beside a listening
    # server: not sent to it, and the collector stays on
    module = tmp_path / "only_delegates.py"
    module.write_text("from ocdec.warm import delegate\n\ndelegate()\n")
    path = os.pathsep.join([str(tmp_path), str(SCRIPTS)])
    imported = subprocess.run(
        [sys.executable, "-c", "import gc, os, only_delegates; "
         "print(gc.isenabled(), os.environ.get('OCDEC_WARM_CHILD'))"],
        cwd=tmp_path, text=True, capture_output=True, timeout=120,
        env={**server.env, "PYTHONPATH": path})
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "True None"
    # a collector turned off elsewhere is not delegate's to turn back on
    other = subprocess.run(
        [sys.executable, "-c", "import gc; gc.disable(); from ocdec.runner import run_rule; "
         "run_rule(lambda smk: print(gc.isenabled(), gc.get_freeze_count()), None)"],
        cwd=tmp_path, text=True, capture_output=True, timeout=120,
        env={**server.env, "PYTHONPATH": str(SCRIPTS)})
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == "False 0"


def test_per_job_threads_and_tmpdir_are_the_jobs_own(server: Server, tmp_path: Path) -> None:
    """Snakemake sets the thread counts and TMPDIR per job: the child takes them (OpenBLAS
    started in the server with every core is set to the job's threads, as a fresh process)."""
    env = {**server.env, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "TMPDIR": str(tmp_path)}
    got = info(run_job(tmp_path, "ok", env=env))
    assert got["child"] == "1"
    assert set(got["blas"]) <= {1}  # numpy's and scipy's OpenBLAS
    assert got["tmpdir"] == str(tmp_path)


def test_another_environment_or_no_server_runs_in_its_own_process(server: Server,
                                                                  tmp_path: Path) -> None:
    other = run_job(tmp_path, "ok", env={**server.env, "JAX_ENABLE_X64": "1"})
    assert other.returncode == 0 and info(other)["child"] is None
    assert "JAX_ENABLE_X64" in server.log.read_text()  # the server says why it refused
    alone = run_job(tmp_path, "fail", env={**server.env, warm.ENV: str(tmp_path / "none")})
    assert info(alone)["child"] is None and alone.returncode == 1
    assert "ValueError: boom" in alone.stderr


def test_a_cancelled_job_ends_its_child(server: Server, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    pid_file = tmp_path / "pid"
    adapter = subprocess.Popen([sys.executable, str(script), "sleep", str(pid_file)],
                               cwd=tmp_path, env=server.env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.1)
    child = int(pid_file.read_text())
    assert child != adapter.pid
    adapter.send_signal(signal.SIGKILL)  # as Snakemake cancelling the job
    adapter.wait()
    wait_gone(child)
    assert "its adapter is gone" in server.log.read_text()
    assert Path(f"{pid_file}.cleaned").read_text() == "cleaned", "its cleanup did not run"


def wait_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.1)


def test_an_adapter_gone_before_its_answer_leaves_the_server_serving(server: Server,
                                                                     tmp_path: Path) -> None:
    """A request whose adapter closes at once (Ctrl-C as the job starts): its child is stopped,
    and the server goes on serving the next jobs."""
    import socket

    script = tmp_path / "job.py"
    script.write_text(JOB)
    pid_file = tmp_path / "pid"
    seen = len(server.log.read_text())
    request = {"identity": warm._identity(), "script": str(script),
               "argv": [str(script), "sleep", str(pid_file)], "cwd": str(tmp_path),
               "env": server.env, "path": sys.path}
    with open(os.devnull, "rb") as stdin, open(os.devnull, "wb") as out:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(server.env[warm.ENV])
        warm.send_request(sock, request, [stdin.fileno(), out.fileno(), out.fileno()])
        sock.close()
    # the child may be stopped before its script has even begun: the server's log names it
    deadline = time.monotonic() + 60
    stopped = re.compile(r"job (\d+): its adapter is gone")
    while not (gone := stopped.findall(server.log.read_text()[seen:])):
        assert time.monotonic() < deadline, f"the job was not stopped: {server.log.read_text()}"
        time.sleep(0.1)
    child = int(gone[0])
    wait_gone(child)
    assert f"job {child} ended" in server.log.read_text()
    assert info(run_job(tmp_path, "ok", env=server.env))["child"] == "1"

def test_the_cache_clearers_are_jax_and_nanobinds_exit_functions() -> None:
    """What _preload records of the imports' exit functions: JAX's clean_up and nanobind's typing
    cache clearer are found, and nothing else (a fresh process: this one imported JAX long
    ago)."""
    code = ("from ocdec import warm; warm._preload(('jax',)); import jax._src.api as api; "
            "found = warm._cache_clearers(); nb = [f for f in found if f is not api.clean_up]; "
            "print(api.clean_up in found, len(nb) >= 1, all(f.__name__ == 'cleanup' for f in nb),"
            " len(warm._IMPORT_EXIT_FUNCS) > len(found))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == ["True"] * 4


def test_a_job_does_not_wait_for_a_server_that_ended_before_listening(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    """start() returns at once; where its server exits before it listens (its lock dropped), a
    job that would wait for the imports runs on its own at once, and says why."""
    real_popen = subprocess.Popen

    def failing(args, **kwargs):  # a server that exits before listening (it gets the lock)
        return real_popen([sys.executable, "-c", "import time; time.sleep(1); raise SystemExit(3)"],
                          **kwargs)

    monkeypatch.setattr(subprocess, "Popen", failing)
    monkeypatch.setattr(warm, "_server", None)  # the module's server is restored afterwards
    monkeypatch.delenv(warm.ENV, raising=False)
    t0 = time.monotonic()
    path = warm.start(log_file=tmp_path / "warm.log")
    assert path is not None and time.monotonic() - t0 < 1  # not waited for
    assert os.environ[warm.ENV] == str(path)
    assert warm._importing(path.with_name(warm.IMPORTING))  # held by the server
    t0 = time.monotonic()
    with caplog.at_level("WARNING", logger="ocdec.warm"):
        warm._await_imports(path, wait_s=60)
    assert 0.5 < time.monotonic() - t0 < 10  # until it ended, not the whole minute
    assert not path.exists() and "ended before it listened" in caplog.text
    warm.stop()
    assert not path.parent.exists()


@pytest.mark.parametrize("after_s", [0.3, 1.5, 2.5])
def test_stop_during_the_imports_ends_the_server_at_once_and_tidies_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after_s: float) -> None:
    """stop() while the server imports (a Ctrl-C early in a run) ends it within a second or
    two, whatever it is importing (a SystemExit raised inside JAX's garbage-collection hook was
    printed and ignored: the server imported on and listened, and stop() waited 20 s), and
    leaves no directory, lock or socket behind."""
    monkeypatch.setattr(warm, "_server", None)
    monkeypatch.delenv(warm.ENV, raising=False)
    path = warm.start(log_file=tmp_path / "warm.log")
    assert path is not None
    server = warm._server
    time.sleep(after_s)
    t0 = time.monotonic()
    warm.stop()
    assert server.poll() is not None and time.monotonic() - t0 < 5
    assert not path.parent.exists(), list(path.parent.iterdir())


def test_a_job_waits_for_the_imports_only_while_the_server_is_importing(
        tmp_path: Path) -> None:
    """_await_imports (a job's delegate()) waits while the lock beside the socket is held, until
    the socket appears; not once the lock is free (the server gone), not past its wait."""
    import fcntl
    import threading

    path = tmp_path / "socket"
    lock = tmp_path / warm.IMPORTING
    t0 = time.monotonic()
    warm._await_imports(path, wait_s=30)  # no lock file: no server importing
    assert time.monotonic() - t0 < 1
    holder = os.open(lock, os.O_WRONLY | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        assert warm._importing(lock)
        os.utime(lock)  # the server's start
        t0 = time.monotonic()
        warm._await_imports(path, wait_s=0.3)  # importing past the wait
        assert 0.25 <= time.monotonic() - t0 < 5
        # the wait counts from the server's start, not the job's: a server stuck in its
        # imports costs the run that wait once
        os.utime(lock, (time.time() - 100, time.time() - 100))
        t0 = time.monotonic()
        warm._await_imports(path, wait_s=30)
        assert time.monotonic() - t0 < 1
        os.utime(lock)
        threading.Timer(0.3, path.touch).start()  # it listens
        t0 = time.monotonic()
        warm._await_imports(path, wait_s=30)
        assert path.exists() and 0.3 <= time.monotonic() - t0 < 5
        path.unlink()
        threading.Timer(0.3, os.close, (holder,)).start()  # it dies while importing
        t0 = time.monotonic()
        warm._await_imports(path, wait_s=30)
        assert 0.3 <= time.monotonic() - t0 < 5 and not warm._importing(lock)
    finally:
        try:
            os.close(holder)
        except OSError:
            pass


def test_a_light_job_runs_at_once_while_the_server_imports(tmp_path: Path) -> None:
    """While a server imports (its lock held, no socket yet), a job whose own imports are light
    (delegate(wait=False)) runs in its own process at once; another waits, here until the server
    is gone, then runs in its own process too."""
    import fcntl
    import threading

    directory = tmp_path / "server"
    directory.mkdir()
    holder = os.open(directory / warm.IMPORTING, os.O_WRONLY | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    env = {**os.environ, warm.ENV: str(directory / "socket")}
    env.pop(warm.CHILD_ENV, None)
    light = JOB.replace("delegate()", "delegate(wait=False)")
    (tmp_path / "light.py").write_text(light)
    (tmp_path / "job.py").write_text(JOB)
    try:
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, str(tmp_path / "light.py"), "ok"], cwd=tmp_path,
                              text=True, capture_output=True, env=env, timeout=120)
        light_s = time.monotonic() - t0
        assert done.returncode == 0 and info(done)["child"] is None, done.stderr
        assert light_s < 30  # not the minute a job that needs the imports may wait
        threading.Timer(light_s + 1.0, os.close, (holder,)).start()
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, str(tmp_path / "job.py"), "ok"], cwd=tmp_path,
                              text=True, capture_output=True, env=env, timeout=120)
        assert done.returncode == 0 and info(done)["child"] is None, done.stderr
        assert time.monotonic() - t0 >= light_s + 1.0  # it waited for the lock
    finally:
        try:
            os.close(holder)
        except OSError:
            pass


# --- sent by Snakemake's own process (ocdec.warm_direct) ------------------------------------------

DIRECT_JOB = '''
from ocdec.warm import delegate

delegate()

import json, os, sys, time

mode = open("mode.txt").read().strip()
print(json.dumps({"child": os.environ.get("OCDEC_WARM_CHILD"), "argv": sys.argv,
                  "cwd": os.getcwd(), "threads": os.environ.get("OMP_NUM_THREADS"),
                  "tmpdir": os.environ.get("TMPDIR"), "path": sys.path, "pid": os.getpid(),
                  "pwd": os.environ.get("PWD")}))
sys.stdout.flush()
if mode == "exit":
    raise SystemExit(3)
if mode == "sleep":
    try:
        with open("pid.txt", "w") as handle:
            handle.write(str(os.getpid()))
        time.sleep(120)
    finally:  # stopped as Ctrl-C stops a fresh job: its cleanup runs
        with open("cleaned.txt", "w") as handle:
            handle.write("cleaned")
'''


def as_server(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment the server's, as Snakemake's is (called in the test itself:
    pytest sets PYTEST_CURRENT_TEST again after the fixtures)."""
    for key in set(os.environ) - set(server.env):
        monkeypatch.delenv(key)
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def direct(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A direct job's script in ``tmp_path``, the working directory."""
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "scripts" / "tmpjob.adapter.py"
    script.parent.mkdir()
    script.write_text(DIRECT_JOB)
    return script


def test_a_direct_job_runs_as_a_fresh_python_of_its_threads_would(
        server: Server, direct: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """Sent by Snakemake's process: the job's child has the arguments, directory, thread
    counts, TMPDIR and module path a fresh ``python SCRIPT`` of the job would have, writes to
    the same streams, and its exit status is a failed command's."""
    from snakemake.benchmark import BenchmarkRecord

    from ocdec.warm_direct import run_direct

    as_server(server, monkeypatch)
    (tmp_path / "mode.txt").write_text("ok")
    fname = str(direct.relative_to(tmp_path))
    record = BenchmarkRecord()
    assert run_direct(fname, threads=3, resources={"tmpdir": str(tmp_path)}, bench_record=record)
    got = json.loads(capfd.readouterr().out.splitlines()[0])
    assert got["child"] == "1" and got["pid"] != os.getpid()
    # as its adapter's child had it: the script's absolute path (runpy's argv[0])
    assert got["argv"] == [str(direct)] and got["cwd"] == str(tmp_path)
    assert got["threads"] == "3" and got["tmpdir"] == str(tmp_path)
    assert got["pwd"] == str(tmp_path)  # as the job's shell sets it
    assert record.running_time is not None and record.running_time > 0
    # the module path of the same script run fresh (no server named: in its own process)
    env = {k: v for k, v in os.environ.items() if k != warm.ENV}
    fresh = subprocess.run([sys.executable, fname], cwd=tmp_path, env=env, text=True,
                           capture_output=True, timeout=120, check=True)
    alone = json.loads(fresh.stdout.splitlines()[0])
    assert alone["child"] is None
    assert got["path"] == alone["path"] and got["path"][0] == str(direct.parent)

    (tmp_path / "mode.txt").write_text("exit")
    with pytest.raises(subprocess.CalledProcessError) as failed:
        run_direct(fname)
    assert failed.value.returncode == 3


def test_a_direct_job_ended_before_its_benchmark_looks_is_not_a_failure(
        server: Server, direct: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """A job of a few milliseconds may end, and the server reap it, before Snakemake's
    benchmark looks for its process: the job still succeeds, with its running time."""
    from snakemake.benchmark import BenchmarkRecord

    from ocdec.warm_direct import run_direct

    as_server(server, monkeypatch)
    (tmp_path / "mode.txt").write_text("ok")
    answered = warm.started_child

    def slow_thread(sock: object) -> int | None:
        pid = answered(sock)
        wait_gone(pid)  # as a job thread held up while the job ran to its end
        return pid

    monkeypatch.setattr(warm, "started_child", slow_thread)
    record = BenchmarkRecord()
    assert run_direct(str(direct.relative_to(tmp_path)), bench_record=record)
    assert json.loads(capfd.readouterr().out.splitlines()[0])["child"] == "1"
    assert record.running_time is not None and record.running_time >= 0
    assert record.process_gone


def test_a_direct_job_whose_server_dies_fails_saying_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """A server that answers STARTED and then goes away (killed, with its children): the job
    fails with status 1 and says why, not as a Ctrl-C (130)."""
    import socket
    import threading

    from ocdec import warm_direct

    monkeypatch.setattr(warm_direct, "_stopping", False)
    path = tmp_path / "socket"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def dying_server() -> None:
        conn, _ = listener.accept()
        head, fds, _, _ = socket.recv_fds(conn, warm._HEADER.size, 3)
        for fd in fds:
            os.close(fd)
        # the whole request read first, as the server reads it: a socket closed with a request
        # still unread resets the job's connection, which then reads as "not sent"
        warm._recv_exact(conn, warm._HEADER.unpack(head)[0])
        conn.sendall(warm.STARTED + warm._PID.pack(os.getpid()))
        conn.close()

    threading.Thread(target=dying_server, daemon=True).start()
    monkeypatch.setenv(warm.ENV, str(path))
    with pytest.raises(subprocess.CalledProcessError) as failed:
        warm_direct.run_direct("job.py")
    listener.close()
    assert failed.value.returncode == 1
    assert "the warm interpreter stopped while running this job" in capfd.readouterr().err


def test_a_direct_job_is_not_sent_while_the_server_imports_or_where_it_refuses(
        server: Server, direct: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """Not sent (False, nothing run: Snakemake then starts its own process) while the server
    is importing, where none is named, or where it refuses the job (another environment)."""
    import fcntl

    from ocdec.warm_direct import run_direct

    as_server(server, monkeypatch)
    (tmp_path / "mode.txt").write_text("ok")
    fname = str(direct.relative_to(tmp_path))
    socket_path = Path(os.environ[warm.ENV])
    importing = tmp_path / "importing-server"
    importing.mkdir()
    lock = os.open(importing / warm.IMPORTING, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        monkeypatch.setenv(warm.ENV, str(importing / "socket"))
        assert not run_direct(fname)
    finally:
        os.close(lock)
    monkeypatch.delenv(warm.ENV)
    assert not run_direct(fname)
    monkeypatch.setenv(warm.ENV, str(socket_path))
    monkeypatch.setenv("JAX_ENABLE_X64", "1")
    assert not run_direct(fname)
    assert capfd.readouterr().out == "", "a job that was not sent ran"


def test_install_sends_only_the_adapters_and_ctrl_c_stops_their_children(
        server: Server, direct: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """The patched runner sends a script that delegates and runs any other as before; a Ctrl-C
    in Snakemake's process closes the connections of the jobs it sent, whose children the server
    stops (their cleanup runs), and Snakemake's own handler still runs."""
    import threading

    from ocdec import warm_direct

    as_server(server, monkeypatch)
    ran: list[str] = []

    class Runner:  # as snakemake.script.PythonScript
        threads, resources, bench_record = 1, None, None
        conda_env = container_img = env_modules = None

        def __init__(self, source: str) -> None:
            self.source = source

        def execute_script(self, fname: str, edit: bool = False) -> None:
            ran.append(fname)

    interrupts: list[int] = []
    monkeypatch.setattr(warm_direct, "_stopping", False)
    monkeypatch.setattr(warm_direct, "_previous_sigint", None)
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        # SIGINT ignored (a run started in the background): the runner is patched, the
        # signal left ignored
        assert warm_direct.install(type("Ignoring", (Runner,), {}))
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.signal(signal.SIGINT, lambda signum, frame: interrupts.append(signum))
        assert warm_direct.install(Runner) and warm_direct.install(Runner)  # once
        assert not warm_direct.install(type("NoRunner", (), {}))
        (tmp_path / "mode.txt").write_text("ok")
        fname = str(direct.relative_to(tmp_path))
        Runner(DIRECT_JOB).execute_script(fname)
        assert ran == [] and json.loads(capfd.readouterr().out)["child"] == "1"
        Runner("print('not an adapter')").execute_script(fname)
        assert ran == [fname]

        (tmp_path / "mode.txt").write_text("sleep")
        pid_file = tmp_path / "pid.txt"

        def interrupt() -> None:
            deadline = time.monotonic() + 60
            while not pid_file.exists() or not pid_file.read_text():
                if time.monotonic() > deadline:
                    return
                time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=interrupt, daemon=True).start()
        with pytest.raises(subprocess.CalledProcessError) as stopped:
            Runner(DIRECT_JOB).execute_script(fname)
        assert stopped.value.returncode == 130 and interrupts == [signal.SIGINT]
        # returned once the child had ended (Snakemake then removes the job's outputs)
        assert not Path(f"/proc/{int(pid_file.read_text())}").exists()
        assert (tmp_path / "cleaned.txt").read_text() == "cleaned"
        # after a Ctrl-C no job is sent: as a job's process started then, it is interrupted
        (tmp_path / "mode.txt").write_text("ok")
        capfd.readouterr()  # the stopped job's line
        with pytest.raises(subprocess.CalledProcessError) as late:
            Runner(DIRECT_JOB).execute_script(fname)
        assert late.value.returncode == 130 and capfd.readouterr().out == ""
    finally:
        signal.signal(signal.SIGINT, before)


# --- through the workflow ------------------------------------------------------------------------


def _products(work: Path) -> dict[str, bytes]:
    """Every product of the run, the fields that record a time set aside."""
    out = {}
    for path in sorted([*(work / "results").rglob("*"), *(work / "resources").rglob("*")]):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.suffix == ".json":
            record = json.loads(data)
            record.pop("runtime_s", None)
            record.pop("stages", None)  # each stage's seconds
            data = json.dumps(record, sort_keys=True).encode()
        elif path.name == "summary.tsv":  # its runtime column
            continue
        out[str(path.relative_to(work))] = data
    return out


@pytest.mark.slow
def test_the_workflow_forks_its_jobs_and_its_products_are_unchanged(tmp_path: Path) -> None:
    """A local run forks its jobs from the warm interpreter (logs/warm.log), and a rerun with
    warm_interpreter: false, every job in its own process, writes the same products."""
    from test_workflow import REPO, small_config, snakemake

    work = tmp_path / "work"
    work.mkdir()
    overlay = small_config(tmp_path)
    args = ("--cores", "2", "--directory", str(work), "--configfile",
            str(REPO / "config" / "config.yaml"), str(REPO / "config" / "offline.yaml"),
            str(overlay))
    snakemake(*args, cwd=work)
    served = (work / "logs" / "warm.log").read_text()
    for script in ("characterize.py", "parameters.py", "plots.py", "summary.py"):
        assert f"{script}, status 0" in served, f"no {script} job ran in the warm interpreter"
    # once it listens, Snakemake's process sends the jobs itself (ocdec.warm_direct)
    assert re.search(r"started: \S+\.summary\.py \(from the workflow's process\)", served)
    warm_products = _products(work)
    assert any(name.endswith("members.parquet") for name in warm_products)
    socket_path = Path(served.split("listening on ")[1].split()[0])
    deadline = time.monotonic() + 10  # the server ends with the workflow
    while socket_path.parent.exists():
        assert time.monotonic() < deadline, f"the server left {socket_path.parent} behind"
        time.sleep(0.1)

    (work / "logs" / "warm.log").unlink()
    snakemake(*args, "--forcerun", "simulate", "--config", "warm_interpreter=False", cwd=work)
    assert not (work / "logs" / "warm.log").exists(), "warm_interpreter: false started a server"
    fresh_products = _products(work)
    assert fresh_products.keys() == warm_products.keys()
    differ = [name for name in warm_products if warm_products[name] != fresh_products[name]]
    assert not differ, f"products differ between the warm interpreter and fresh processes: {differ}"

