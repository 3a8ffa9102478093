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

_lock = threading.Lock()
_active: set[socket.socket] = set()  # the connections of the jobs sent and not yet ended
_previous_sigint: Any = None


def job_env(threads: int, resources: Any) -> dict[str, str]:
    """The environment Snakemake's shell gives a job of ``threads`` and ``resources``."""
    env = dict(os.environ)
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
    if warm._importing(Path(path).with_name(warm.IMPORTING)):
        return False  # its adapter waits for the imports, or runs a light job at once
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(30.0)
        sock.connect(path)
        request = {"identity": warm._identity(), "script": os.path.abspath(fname),
                   "argv": [fname], "cwd": os.getcwd(), "env": job_env(threads, resources),
                   "path": None}
        warm.send_request(sock, request, [0, 1, 2])
        pid = warm.started_child(sock)
    except OSError as err:
        log.debug("job not sent to the warm interpreter: %s", err)
        pid = None
    if pid is None:
        sock.close()
        return False
    sock.settimeout(None)
    with _lock:
        _active.add(sock)
    try:
        with _benchmarked(pid, bench_record):
            status = warm.child_status(sock)
    finally:
        with _lock:
            _active.discard(sock)
        sock.close()
    command = f"{sys.executable} {fname}"
    if status is None:  # the server is gone, or Ctrl-C closed the connection
        raise subprocess.CalledProcessError(130, command,
                                            stderr="the warm interpreter's job was stopped")
    if status != 0:
        raise subprocess.CalledProcessError(status, command)
    return True


def _benchmarked(pid: int, bench_record: Any) -> Any:
    if bench_record is None:
        return contextlib.nullcontext()
    from snakemake.benchmark import benchmarked

    return benchmarked(pid, bench_record)


def _interrupted(signum: int, frame: Any) -> None:
    """Ctrl-C in Snakemake's process: close the connections of the jobs it sent, whose
    children the server then stops as a Ctrl-C stops a fresh job (they run in the server's
    session, which the terminal's signal does not reach); then Snakemake's own handling."""
    with _lock:
        active = list(_active)
    for sock in active:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    previous = _previous_sigint
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        raise KeyboardInterrupt


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
    if previous is not _interrupted:
        _previous_sigint = previous
        signal.signal(signal.SIGINT, _interrupted)

    def execute_script(self: Any, fname: str, edit: bool = False) -> None:
        if eligible(self, edit) and run_direct(fname, getattr(self, "threads", 1),
                                               getattr(self, "resources", None),
                                               getattr(self, "bench_record", None)):
            return
        original(self, fname, edit)

    execute_script._ocdec_direct = True  # type: ignore[attr-defined]
    execute_script.__doc__ = original.__doc__
    setattr(script_class, METHOD, execute_script)
    return True
