"""Rule scripts handed to the warm interpreter by Snakemake's own process, without an adapter.

In a local run each ``script:`` job was a fresh ``python`` whose Snakemake preamble imports
Snakemake (0.15-0.25 s) before the adapter's :func:`ocdec.warm.delegate` sends the job to the
warm interpreter and waits: about 0.2 s of every job, seven jobs a region
(docs/performance.md). :func:`install` (the workflow's ``onstart``, once the server is started)
has Snakemake's Python script runner send such a job itself, from the thread that would have
waited for that process: the same script file (preamble and adapter), arguments, working
directory, environment (the job's thread counts and ``tmpdir``, as Snakemake's shell sets
them) and standard streams, so the child runs what the adapter's child ran. Snakemake still
times the job (its benchmark file now measures the job's own process) and reports its exit
status as a failed command; a Ctrl-C that interrupts Snakemake stops the children it sent.

Only the workflow's adapters go this way (a script that calls :func:`ocdec.warm.delegate`), and
only while the server listens: while it imports, in a conda environment or a container, or where
it refuses a job, the job starts its own process as before (its adapter then delegates, or not,
as :func:`ocdec.warm.delegate` says). Where the installed Snakemake lacks the runner's method,
nothing changes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ocdec import warm

log = logging.getLogger(__name__)

METHOD = "execute_script"  # snakemake.script.PythonScript's: run the written script file
MARK = "from ocdec.warm import delegate"  # in a workflow adapter's source
# Environment variables Snakemake's shell sets for a job with ``threads`` (shell.py)
THREAD_VARS = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
TMPDIR_VARS = ("TMPDIR", "TMP", "TEMPDIR", "TEMP")

# re-entrant: the SIGINT handler takes it in the main thread, which may hold it already
_lock = threading.RLock()
_active: set[socket.socket] = set()  # the connections of the jobs sent and not yet ended
_previous_sigint: Any = None
_stopping = False  # set by a Ctrl-C: no job is sent after it, and those sent are stopped


def job_env(threads: int, resources: Any) -> dict[str, str]:
    """The environment Snakemake's shell gives a job of ``threads`` and ``resources``."""
    env = dict(os.environ)
    env["PWD"] = os.getcwd()  # as the job's shell sets it (snakemake -d runs in that folder)
    env.update(dict.fromkeys(THREAD_VARS, str(threads)))
    tmpdir = _resource(resources, "tmpdir")
    if tmpdir:
        env.update(dict.fromkeys(TMPDIR_VARS, str(tmpdir)))
    return env


def _resource(resources: Any, name: str) -> Any:
    try:
        return resources.get(name, None)
    except AttributeError:
        return None


def eligible(script: Any, edit: bool = False) -> bool:
    """Whether Snakemake's script runner ``script`` holds a workflow adapter that the server can
    take: plain Python on this interpreter, not edited, its source calling delegate()."""
    return (not edit and getattr(script, "conda_env", None) is None
            and getattr(script, "container_img", None) is None
            and getattr(script, "env_modules", None) is None
            and MARK in str(getattr(script, "source", "")))


def run_direct(fname: str, threads: int = 1, resources: Any = None,
               bench_record: Any = None) -> bool:
    """Run the script file ``fname`` in a child of the warm server as ``python fname`` would run
    it in a job of ``threads`` and ``resources``; False (nothing run) where the server is not
    listening or refuses it. Raises :class:`subprocess.CalledProcessError` on a non-zero exit,
    as Snakemake's shell does. ``bench_record``: Snakemake's benchmark record, filled from the
    child's process while it runs."""
    path = os.environ.get(warm.ENV)
    if not path or not hasattr(socket, "send_fds"):
        return False
    command = f"{sys.executable} {fname}"
    if _stopping:  # Snakemake is stopping on a Ctrl-C: as a job's process started then would
        raise subprocess.CalledProcessError(130, command)
    if warm._importing(Path(path).with_name(warm.IMPORTING)):
        return False  # its adapter waits for the imports, or runs a light job at once
    sent = warm.send_job(path, os.path.abspath(fname), [fname], job_env(threads, resources),
                         None, [0, 1, 2])
    if sent is None:
        return False
    sock, pid = sent
    with _lock:
        _active.add(sock)
        if _stopping:  # a Ctrl-C while the job was being sent
            _shut(sock)
    try:
        with _benchmarked(pid, bench_record):
            status = warm.child_status(sock)
    finally:
        with _lock:
            _active.discard(sock)
        sock.close()
    if status is None and _stopping:
        # the server stops the child as Ctrl-C stops a fresh job: Snakemake removes a failed
        # job's outputs once this returns, so not before the child has ended
        _wait_gone(pid, len(warm.CANCEL_SIGNALS) * warm.GRACE_S + 1.0)
        raise subprocess.CalledProcessError(130, command)
    if status is None:  # the server died: its children with it
        print("ocdec: error: the warm interpreter stopped while running this job",
              file=sys.stderr)
        raise subprocess.CalledProcessError(1, command)
    if status != 0:
        raise subprocess.CalledProcessError(status, command)
    return True


def _wait_gone(pid: int, timeout: float) -> None:
    """Wait until process ``pid`` has ended (the server reaps it), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:  # another user's: the pid was reused, ours is gone
            return
        time.sleep(0.05)


@contextlib.contextmanager
def _benchmarked(pid: int, bench_record: Any) -> Iterator[None]:
    """Snakemake's benchmark of process ``pid`` into ``bench_record`` (None: none); where the
    child has already ended and been reaped by the server (a job of a few milliseconds), its
    running time alone, as Snakemake records a job gone before its first sample."""
    if bench_record is None:
        yield
        return
    import psutil
    from snakemake.benchmark import benchmarked

    start, sampled = time.time(), False
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(benchmarked(pid, bench_record))
            sampled = True
        except psutil.Error:  # psutil.Process(pid): no such process any more
            bench_record.process_gone = True
        try:
            yield
        finally:
            if not sampled:
                bench_record.running_time = time.time() - start


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _interrupted(signum: int, frame: Any) -> None:
    """Ctrl-C in Snakemake's process: close the connections of the jobs it sent, whose
    children the server then stops as a Ctrl-C stops a fresh job (they run in the server's
    session, which the terminal's signal does not reach), and send no more; then Snakemake's
    own handling."""
    global _stopping
    with _lock:
        _stopping = True
        active = list(_active)
    for sock in active:
        _shut(sock)
    previous = _previous_sigint
    if callable(previous):
        previous(signum, frame)
    else:  # SIG_DFL: the default action, as before this handler
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)


def install(script_class: Any = None) -> bool:
    """Have Snakemake's Python script runner (``script_class``; snakemake.script.PythonScript by
    default) send the workflow's adapters to the warm server (:func:`run_direct`); True where
    it now does, False where the class lacks the method or Ctrl-C cannot be followed here (not
    the main thread), and then nothing is changed."""
    global _previous_sigint
    if script_class is None:
        try:
            from snakemake.script import PythonScript as script_class
        except ImportError:
            return False
    original = getattr(script_class, METHOD, None)
    if original is None:
        return False
    if getattr(original, "_ocdec_direct", False):
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    previous = signal.getsignal(signal.SIGINT)
    # Ignored (a run started in the background by a script): Ctrl-C stops nothing, as before
    if previous not in (signal.SIG_IGN, None, _interrupted):
        _previous_sigint = previous
        signal.signal(signal.SIGINT, _interrupted)

    def execute_script(self: Any, fname: str, edit: bool = False, *args: Any,
                       **kwargs: Any) -> None:
        if not args and not kwargs and eligible(self, edit) and run_direct(
                fname, getattr(self, "threads", 1), getattr(self, "resources", None),
                getattr(self, "bench_record", None)):
            return
        original(self, fname, edit, *args, **kwargs)

    execute_script._ocdec_direct = True  # type: ignore[attr-defined]
    execute_script.__doc__ = original.__doc__
    setattr(script_class, METHOD, execute_script)
    return True
