"""Rule jobs forked from a warm interpreter: a local workflow run pays the imports once.

A local run (``snakemake --cores N``) starts several short Python jobs per region, and each fresh
interpreter spends 0.5-3.5 s importing pandas, astropy, matplotlib, scikit-learn, JAX and Flax
before its work (docs/performance.md). The workflow's ``onstart`` (:func:`start`) launches one
server (:func:`serve`) that imports those libraries once, without starting JAX's backend, and
listens on a Unix socket in a private temporary directory; ``OCDEC_WARM`` names it to the jobs.

Each rule adapter calls :func:`delegate` before its own imports. While the server is still
importing (``start`` does not wait for it), a job that needs those libraries waits for it, and
the first stages, whose own imports are light (the quality filter, the reference values, reading
or downloading stars: ``delegate(wait=False)``), run in their own processes on the cores the
imports leave idle. Where the server is listening
and runs this same interpreter, environment and ocdec (apart from the per-job thread counts and
temporary directory Snakemake sets), the server forks a child that runs the job's script with
the adapter's own standard streams, working directory, environment and arguments, exits as a
fresh interpreter would (threads joined, atexit run), and the adapter exits with its status.
Snakemake still starts, times, logs and cancels one process per job, so every rule can still be
seen and rerun on its own: when an adapter goes away, the server asks its child to stop as
Ctrl-C would (its cleanup runs), then terminates and kills it. In every other case (no server
yet, a SLURM job on another node, a conda environment, ``warm_interpreter: false``, not Linux)
:func:`delegate` returns and the job runs in its own process as before. The child runs the same
code on the same inputs, so the outputs are the same (tests/test_warm.py compares them).

Forking is safe here because the server never starts a JAX backend, a JAX compilation or a
thread of its own (numba's loops are loaded, or compiled once, in its one thread: COMPILED);
the libraries' import-time threads (OpenBLAS, Arrow) handle a fork as they do under
:mod:`multiprocessing`, and each child sets OpenBLAS to its job's ``threads``. The server keeps
serving whatever one job does, and its children die with it.
"""

from __future__ import annotations

import functools
import gc
import importlib
import logging
import os
import pickle
import re
import selectors
import signal
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV = "OCDEC_WARM"  # the server's socket path, set for the jobs by start()
CHILD_ENV = "OCDEC_WARM_CHILD"  # set in a forked job: its delegate() returns at once

# Environment variables Snakemake sets per job (shell.py: `threads`, the `tmpdir` resource):
# they may differ from the server's; any other difference means another configuration and the
# job runs in its own process.
PER_JOB_ENV = frozenset({
    "OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "TMPDIR", "TMP", "TEMPDIR", "TEMP", CHILD_ENV,
    # set by the shell Snakemake runs each job's command in
    "_", "SHLVL", "PWD", "OLDPWD",
})

# What the rule adapters import (directly or on first use), heaviest first. Importing is all the
# server does with them: no JAX backend, no compilation, no thread pool is started before a fork.
PRELOAD = (
    "jax", "jax.numpy", "flax.nnx", "optax",
    "sklearn.cluster", "sklearn.metrics", "scipy.stats", "scipy.optimize", "scipy.ndimage",
    "pandas", "pyarrow.parquet",
    "matplotlib", "matplotlib.pyplot", "matplotlib.figure", "matplotlib.backends.backend_agg",
    "astropy.table", "astropy.units", "astropy.coordinates", "astropy.io.votable",
    "astropy.io.fits", "astropy.modeling.functional_models",
    "snakemake.iocontainers", "snakemake.logging",
    "ocdec.characterize", "ocdec.methods.dec", "ocdec.methods.default.method",
    "ocdec.methods.thesis", "ocdec.physics.parameters", "ocdec.physics.figures",
    "ocdec.results.figures", "ocdec.results.comparison", "ocdec.results.summary",
    "ocdec.data.quality", "ocdec.data.simulate", "ocdec.tables",
)

# Preloaded modules whose compiled loops (numba) the server loads before it forks: a job would
# spend 0.2-0.3 s setting up numba's compiler tables to load them. Loading, or compiling them
# where numba's cache is cold (a few seconds, once), runs in this thread and starts none (numba
# loads scipy's BLAS, which the preloads have already loaded), so the fork stays safe.
COMPILED = ("ocdec.methods.default.star_loops", "ocdec.methods.default.map_filters",
            "ocdec.methods.default.mixture_loops")

_server: Any = None  # the subprocess.Popen of start()
#: How long a job that needs the imports waits for them (3.5-8 s; :func:`delegate`): started
#: before them, such jobs ran in fresh processes that imported everything themselves, 1-3 s more
#: each on cores the imports also use, so on 2 cores the offline rerun took longer without the
#: wait (36-37 s) than with.
READY_WAIT_S = 60.0
# Beside the socket: a file start() locks (flock) and hands to the server, which holds the lock
# until it listens; the kernel drops it if the server dies. A waiting job reads it as "still
# importing", and no server, slow or gone, leaves a job waiting for nothing.
IMPORTING = "importing"
# The log line of each job the server ran, and how ended_jobs() reads it back.
JOB_ENDED = "job %d ended: %s, status %d, %.1f s, peak memory %.0f MB"
_JOB_ENDED_RE = re.compile(r"job \d+ ended: (\S+), status (-?\d+), ([\d.]+) s, "
                           r"peak memory (\d+) MB")
_HEADER = struct.Struct("!Q")  # length of the pickled request that follows
_STATUS = struct.Struct("!i")  # the child's exit status (negative: killed by that signal)
_PID = struct.Struct("!i")  # the child's process id, after STARTED (a direct job's benchmark)
STARTED, REFUSED = b"S", b"R"
# sys.path of a fresh interpreter after its script's directory (the server's own before ocdec's
# directory was put first; start() sets it): a direct job's (ocdec.warm_direct) sends none
FRESH_PATH: list[str] = []


def _identity() -> dict[str, str]:
    """What must match between a job and the server: the interpreter and its environment (a
    virtual environment's python resolves to its base's, hence the prefix), and this ocdec."""
    return {"executable": os.path.abspath(sys.executable), "prefix": sys.prefix,
            "ocdec": os.path.realpath(Path(__file__).parent)}


# ------------------------------------------------------------------------------------ the job side

def send_request(sock: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    """A job's request (script, argv, cwd, env, path and the identity) and its stdin, stdout and
    stderr ``fds``, as the server reads them."""
    data = pickle.dumps(request)
    socket.send_fds(sock, [_HEADER.pack(len(data))], fds)
    sock.sendall(data)


def delegate(wait: bool = True) -> None:
    """Run this job's script in a child of the warm server and exit with its status; return
    (run here, as before) where there is no compatible server. Call it first in an adapter.
    ``wait``: wait for a server still importing (up to :data:`READY_WAIT_S`); False for a job
    whose own imports are light, which then runs here at once.

    Run here, the job's imports follow, with the garbage collector off: it would walk their
    hundreds of thousands of objects again and again (0.4-0.9 s of a fresh default-method job's
    2.2-3.1 s of imports); :func:`ocdec.runner.run_rule` calls :func:`imports_done`, which sets
    them out of its reach and turns it back on. Only in a job's script: an adapter imported as
    a module (a test reading its functions) is neither sent nor changes the collector."""
    if sys._getframe(1).f_globals.get("__name__") != "__main__":
        return
    _delegate(wait)
    global _collector_off
    if gc.isenabled():
        gc.disable()
        _collector_off = True


#: The garbage collector was turned off by :func:`delegate` for a job's imports.
_collector_off = False


def imports_done() -> None:
    """A job's imports are done (:func:`ocdec.runner.run_rule`): where :func:`delegate` turned
    the garbage collector off for them, their objects go out of its reach (``gc.freeze``) and it
    is turned back on."""
    global _collector_off
    if _collector_off:
        _collector_off = False
        gc.freeze()
        gc.enable()


def _delegate(wait: bool) -> None:
    path = os.environ.get(ENV)
    if not path or os.environ.get(CHILD_ENV) or not hasattr(socket, "send_fds"):
        return
    if wait:
        _await_imports(Path(path))
    sent = send_job(path, os.path.abspath(sys.argv[0]), sys.argv, dict(os.environ), sys.path,
                    [0, 1, 2])
    if sent is None:
        return  # not listening (yet, or on this node), or refused: run here
    sock, _ = sent
    try:
        status = child_status(sock)
    except KeyboardInterrupt:  # Ctrl-C: closing the connection stops the job's process too
        raise SystemExit(130) from None
    if status is None:
        print("ocdec: error: the warm interpreter stopped while running this job",
              file=sys.stderr)
        raise SystemExit(1)
    if status < 0:
        print(f"ocdec: error: the job's process was killed by signal {-status}", file=sys.stderr)
        raise SystemExit(128 - status)
    raise SystemExit(status)


def send_job(path: str | os.PathLike[str], script: str, argv: list[str], env: dict[str, str],
             sys_path: list[str] | None, fds: list[int]
             ) -> tuple[socket.socket, int] | None:
    """Ask the server listening at ``path`` to fork a child that runs ``script`` with ``argv``,
    this working directory, ``env``, ``sys_path`` (None: a fresh ``python SCRIPT``'s) and the
    standard streams ``fds``. Returns the connection (blocking: :func:`child_status` waits on
    it; closing it stops the child) and the child's process id, or None where the server is not
    listening, does not answer, refuses the job or closes first."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(30.0)  # a server that does not answer
        sock.connect(str(path))
        send_request(sock, {"identity": _identity(), "script": script, "argv": argv,
                            "cwd": os.getcwd(), "env": env, "path": sys_path}, fds)
        pid = started_child(sock)
    except OSError as err:
        log.debug("job not sent to the warm interpreter: %s", err)
        pid = None
    if pid is None:
        sock.close()
        return None
    sock.settimeout(None)
    return sock, pid


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes from ``sock``, or fewer where it closes (or is reset) first."""
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except ConnectionResetError:  # the server killed with our request unread
            break
        if not chunk:
            break
        data += chunk
    return data


def started_child(sock: socket.socket) -> int | None:
    """The server's answer to a request: the child's process id, or None where it refused the
    job or closed first."""
    if sock.recv(1) != STARTED:
        return None
    data = _recv_exact(sock, _PID.size)
    return _PID.unpack(data)[0] if len(data) == _PID.size else None


def child_status(sock: socket.socket) -> int | None:
    """The child's exit status once it has ended (negative: killed by that signal), or None
    where the server closed the connection first."""
    data = _recv_exact(sock, _STATUS.size)
    return _STATUS.unpack(data)[0] if len(data) == _STATUS.size else None


def _importing(lock: Path) -> bool:
    """Whether a server still holds the lock ``lock`` (:data:`IMPORTING`): still importing."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:  # none: no server, or one that listens already
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # and with it the shared lock, if it was taken
    return False


def _await_imports(path: Path, wait_s: float = READY_WAIT_S) -> None:
    """Return once the server listens at ``path``, or is no longer importing (gone), or
    ``wait_s`` after it started (the lock file's time, so that a server stuck in its imports
    costs the run that wait once, not every job); with a warning where it does not listen."""
    lock = path.with_name(IMPORTING)
    try:
        deadline = lock.stat().st_mtime + wait_s
    except OSError:  # none: the server listens, or is gone
        deadline = 0.0
    while not path.exists() and _importing(lock):
        if time.time() >= deadline:
            log.warning("the warm interpreter is not listening %.0f s after it started: this "
                        "job imports its own", wait_s)
            return
        time.sleep(0.02)
    if not path.exists():
        log.warning("the warm interpreter ended before it listened (logs/warm.log says why): "
                    "this job imports its own")


# ------------------------------------------------------------------------------ the server side

@functools.cache
def _thread_pools() -> Any:
    """threadpoolctl's controller of the loaded BLAS and OpenMP libraries, found once (in the
    server, after its imports): finding them in each child was 0.02 s of every job."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


# The exit functions the preloaded modules registered (_preload), for _cache_clearers.
_IMPORT_EXIT_FUNCS: list[Any] = []


def _preload(modules: tuple[str, ...]) -> None:
    import atexit

    t0 = time.perf_counter()
    register = atexit.register

    def recorded(func: Any, *args: Any, **kwargs: Any) -> Any:
        _IMPORT_EXIT_FUNCS.append(func)
        return register(func, *args, **kwargs)

    atexit.register = recorded  # type: ignore[assignment]
    try:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as err:  # an optional extra missing: the job imports what it needs
                log.info("not preloaded: %s (%s)", name, err)
    finally:
        atexit.register = register  # type: ignore[assignment]
    for name in COMPILED:
        module = sys.modules.get(name)
        if module is not None:
            try:
                module.load()
            except Exception as err:  # e.g. no compiler: each job compiles or fails on its own
                log.info("compiled loops not loaded: %s (%s)", name, err)
    log.info("preloaded %d modules in %.1f s", len(modules), time.perf_counter() - t0)


def ended_jobs(log_file: str | Path) -> list[dict[str, Any]]:
    """The jobs a server's log (``logs/warm.log``) says it ran: script, status, seconds and peak
    memory (MB) each; none where there is no log."""
    path = Path(log_file)
    if not path.is_file():
        return []
    return [{"script": m.group(1), "status": int(m.group(2)), "seconds": float(m.group(3)),
             "peak_mb": float(m.group(4))} for m in _JOB_ENDED_RE.finditer(path.read_text())]


def _exit_status(code: object) -> int:
    """The exit status a fresh interpreter gives ``raise SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF  # what the OS keeps of exit()'s argument
    print(code, file=sys.stderr)
    return 1


def _cache_clearers() -> list[Any]:
    """The exit functions of the preloaded libraries that a job's child can skip: JAX's
    ``clean_up`` (it empties JAX's caches and destroys the backends before the interpreter tears
    itself down, and shuts down ``jax.distributed``: kept where that runs) and nanobind's, which
    empties ``typing``'s caches. A job's child never tears down (it ends with ``os._exit``, and
    the OS frees its devices), and emptying caches that the child shares with the server writes
    to their pages, copying them: 0.1 s of every job, most of a small job's end."""
    found = []
    api = sys.modules.get("jax._src.api")
    distributed = sys.modules.get("jax._src.distributed")
    state = getattr(distributed, "global_state", None)
    if (api is not None and callable(getattr(api, "clean_up", None))
            and getattr(state, "client", None) is None):
        found.append(api.clean_up)
    # nanobind's is a function "cleanup" of no module that runs typing._cleanups; atexit's list
    # cannot be read, so _preload records what the imports register
    found += [f for f in _IMPORT_EXIT_FUNCS if getattr(f, "__name__", "") == "cleanup"
              and "_cleanups" in getattr(getattr(f, "__code__", None), "co_consts", ())]
    return found


def _finish_as_interpreter() -> None:
    """What a fresh interpreter does as it exits: join non-daemon threads, run the atexit
    functions (less the libraries' cache clearers, :func:`_cache_clearers`), free the script's
    objects (an unclosed file is flushed), flush the streams."""
    import atexit
    import threading

    for func in _cache_clearers():
        atexit.unregister(func)
    for step in (getattr(threading, "_shutdown", None), atexit._run_exitfuncs, gc.collect,
                 logging.shutdown, sys.stdout.flush, sys.stderr.flush):
        if step is None:
            continue
        try:
            step()
        except BaseException:  # as at an interpreter's exit: the job's status stands
            pass


def _run_child(request: dict[str, Any], fds: list[int], imports_set: dict[str, str]) -> int:
    """In the forked child: become the job's process, run its script, return its status."""
    for fd, target in zip(fds, (0, 1, 2), strict=True):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for key, value in imports_set.items():
        os.environ.setdefault(key, value)
    os.environ[CHILD_ENV] = "1"
    tempfile.tempdir = None  # re-read TMPDIR (Snakemake's tmpdir resource)
    sys.argv = list(request["argv"])
    if request["path"] is not None:
        sys.path[:] = request["path"]
    else:  # a direct job's: as `python SCRIPT` would start (-P: without the script's directory)
        safe = getattr(sys.flags, "safe_path", False)
        sys.path[:] = [*([] if safe else [os.path.dirname(request["script"])]), *FRESH_PATH]
    if hasattr(sys.stdout, "reconfigure"):  # line-buffered on a terminal, as a fresh process
        sys.stdout.reconfigure(line_buffering=os.isatty(1))
    from ocdec.threads import available_threads

    # OpenBLAS and OpenMP started in the server with its threads: the job's, as a fresh process
    _thread_pools().limit(limits=available_threads())
    import runpy

    try:
        runpy.run_path(request["script"], run_name="__main__")
        return 0
    except SystemExit as done:
        return _exit_status(done.code)
    except KeyboardInterrupt:
        return 130
    except BaseException as err:  # as the interpreter would: the traceback on stderr, status 1
        tb = err.__traceback__  # from the script's own frames, as a fresh process shows it
        while tb is not None and tb.tb_frame.f_code.co_filename != request["script"]:
            tb = tb.tb_next
        if tb is not None:
            err.__traceback__ = tb  # the hook prints the exception's own
        sys.excepthook(type(err), err, err.__traceback__)
        return 1


def _die_with_parent(server: int) -> None:
    """Linux: the kernel kills this child if the server dies (its adapter would wait forever)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != server:  # it died before the call
        os._exit(1)


# A cancelled job is asked to stop as Ctrl-C asks a fresh process (KeyboardInterrupt: its
# cleanup and atexit run), then told (SIGTERM), then killed, GRACE_S apart.
CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
GRACE_S = 5.0


class _Server:
    def __init__(self, listener: socket.socket, parent: int | None, env: dict[str, str]
                 ) -> None:
        self.listener = listener
        self.parent = parent
        self.pid = os.getpid()
        self.identity = _identity()
        self.env = env  # before the imports, which set a few variables of their own
        # ... which a fresh job's imports would set too (JAX's TF_CPP_MIN_LOG_LEVEL, ...)
        self.imports_set = {k: v for k, v in os.environ.items() if k not in env}
        self.jobs: dict[int, socket.socket] = {}  # child pid -> its adapter's connection
        self.started: dict[int, tuple[str, float]] = {}  # child pid -> (script, start time)
        self.cancelling: dict[int, tuple[int, float]] = {}  # pid -> (signals sent, last at)
        self.stopping = False
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)

    def run(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the loop through the pipe
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self.stopping:
                for key, _ in self.selector.select(timeout=0.2 if self.cancelling else 1.0):
                    try:
                        self._event(key)
                    except Exception:  # one job's trouble must not end the others'
                        log.exception("while serving a job")
                self._reap()
                self._escalate()
                if self.parent is not None and os.getppid() != self.parent:
                    log.info("the workflow that started the server has ended")
                    break
        finally:
            self._shutdown()

    def _event(self, key: selectors.SelectorKey) -> None:
        if key.data == "accept":
            self._accept()
        elif key.data == "wake":
            try:
                os.read(self.wake_r, 512)
            except BlockingIOError:
                pass
        else:  # an adapter's connection readable: it is gone (it only waits)
            self._adapter_gone(key.data, key.fileobj)  # type: ignore[arg-type]

    def _stop(self, *_: Any) -> None:
        self.stopping = True

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        fds: list[int] = []
        try:
            conn.settimeout(10.0)
            head, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
            (size,) = _HEADER.unpack(head)
            data = b""
            while len(data) < size:
                chunk = conn.recv(min(size - len(data), 1 << 20))
                if not chunk:
                    raise OSError("request cut short")
                data += chunk
            request = pickle.loads(data)
            differ = sorted(k for k in set(request["env"]) | set(self.env)
                            if k not in PER_JOB_ENV and request["env"].get(k) != self.env.get(k))
            if len(fds) != 3 or request["identity"] != self.identity or differ:
                raise ValueError(f"refused: another interpreter or ocdec "
                                 f"({request['identity']}), or environment variables {differ}")
            for stream in (sys.stdout, sys.stderr):
                stream.flush()  # else the child would write the server's buffered lines again
            pid = os.fork()
        except Exception as err:  # refused, unreadable, or no fork: the job runs on its own
            log.info("job not taken: %s", err)
            try:
                conn.sendall(REFUSED)
            except OSError:
                pass
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        if pid == 0:  # the child: never back into the server's code, whatever happens
            status = 1
            try:
                self._in_child(conn)
                status = _run_child(request, fds, self.imports_set)
            finally:
                _finish_as_interpreter()
                os._exit(status)
        for fd in fds:
            os.close(fd)
        self.started[pid] = (Path(request["script"]).name, time.monotonic())
        try:
            conn.sendall(STARTED + _PID.pack(pid))
        except OSError:  # the adapter is already gone
            log.info("job %d: its adapter is gone; stopping it", pid)
            conn.close()
            self._cancel(pid)
            return
        conn.setblocking(False)
        self.jobs[pid] = conn
        self.selector.register(conn, selectors.EVENT_READ, pid)
        log.info("job %d started: %s%s", pid, self.started[pid][0],
                 " (from the workflow's process)" if request["path"] is None else "")

    def _in_child(self, conn: socket.socket) -> None:
        """Drop the server's signal handlers, wake-up pipe and sockets in a fresh child."""
        _die_with_parent(self.pid)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a fresh Python's
        self.selector.close()
        for other in (conn, *self.jobs.values()):
            other.close()
        self.listener.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        root = logging.getLogger()  # the job configures its own logging, as in a fresh process
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)

    def _reap(self) -> None:
        while True:
            try:
                pid, raw, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.cancelling.pop(pid, None)
            script, t0 = self.started.pop(pid, ("?", time.monotonic()))
            status = os.waitstatus_to_exitcode(raw)
            # the job's peak memory (with the pages it shares with this process, as a fresh
            # process counts its imports): its benchmark file sees only the adapter
            log.info(JOB_ENDED, pid, script, status, time.monotonic() - t0,
                     usage.ru_maxrss / 1024)
            conn = self.jobs.pop(pid, None)
            if conn is None:
                continue
            self.selector.unregister(conn)
            try:
                conn.setblocking(True)
                conn.sendall(_STATUS.pack(status))
            except OSError:
                pass
            conn.close()

    def _adapter_gone(self, pid: int, conn: socket.socket) -> None:
        """The adapter closed its end (Snakemake cancelled the job): stop the child too."""
        try:
            if conn.recv(1):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        log.info("job %d: its adapter is gone; stopping it", pid)
        self.selector.unregister(conn)
        conn.close()
        self.jobs.pop(pid, None)
        self._cancel(pid)

    def _cancel(self, pid: int) -> None:
        if pid not in self.cancelling:
            self._signal(pid, 0)

    def _signal(self, pid: int, step: int) -> None:
        try:
            os.kill(pid, CANCEL_SIGNALS[step])
        except ProcessLookupError:
            return
        self.cancelling[pid] = (step, time.monotonic())

    def _escalate(self) -> None:
        now = time.monotonic()
        for pid, (step, at) in list(self.cancelling.items()):
            if now - at > GRACE_S and step + 1 < len(CANCEL_SIGNALS):
                self._signal(pid, step + 1)

    def _shutdown(self) -> None:
        """Stop every job still running (as cancelled ones), waiting for them a bounded time."""
        for pid in list(self.jobs):
            self._cancel(pid)
        deadline = time.monotonic() + len(CANCEL_SIGNALS) * GRACE_S
        while self.started and time.monotonic() < deadline:
            self._reap()
            self._escalate()
            time.sleep(0.05)
        self.listener.close()


def serve(path: str | Path, parent: int | None = None,
          modules: tuple[str, ...] = PRELOAD, importing_fd: int | None = None) -> None:
    """Import ``modules``, then run jobs sent to the Unix socket ``path`` until SIGTERM or until
    the process ``parent`` (the workflow) is gone. The socket appears only once the imports are
    done (bound under a temporary name, then renamed); ``importing_fd``, start()'s lock on
    :data:`IMPORTING`, is released then."""
    path = Path(path)
    env = dict(os.environ)
    # The collector off while importing: it walked the imports' growing heap again and again
    # (3.1-4.2 s of imports with it, 2.5-2.9 s without and 0.35 s for the one collection below).
    gc.disable()
    _preload(modules)
    _thread_pools()
    # The imports' objects, hundreds of thousands, will never be freed: out of the collector's
    # reach, a job's collections (the one at its exit too) no longer walk them, which touched
    # every page the child shares with the server and copied it (0.2 s of a trivial job).
    gc.collect()
    gc.freeze()
    gc.enable()  # the jobs' children inherit it
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp))
    listener.listen(64)
    os.replace(tmp, path)
    if importing_fd is not None:
        path.with_name(IMPORTING).unlink(missing_ok=True)
        os.close(importing_fd)  # the lock: jobs waiting for the imports connect now
    log.info("warm interpreter listening on %s", path)
    owner = os.getpid()
    try:
        _Server(listener, parent, env).run()
    finally:
        if os.getpid() == owner:  # never a forked job's
            path.unlink(missing_ok=True)


def start(log_file: str | Path | None = None) -> Path | None:
    """Launch the server for this process's jobs (the workflow's ``onstart``): a detached
    ``python -m ocdec.warm`` that exits with this process; sets ``OCDEC_WARM`` for the jobs.
    Does not wait for its imports: a job waits for them, or not (:func:`delegate`). Returns the
    socket's path (None where it could not start: the jobs then run as before)."""
    global _server
    import fcntl
    import subprocess

    if not sys.platform.startswith("linux"):  # fork without exec is unsafe on macOS
        return None
    directory = Path(tempfile.mkdtemp(prefix="ocdec-warm-"))  # mode 0700: this user only
    path = directory / "socket"
    # set first: the server compares each job's environment with its own
    os.environ[ENV] = str(path)
    # this ocdec (not one installed elsewhere), without a changed PYTHONPATH in its environment
    code = ("import sys; fresh = sys.path[:] if getattr(sys.flags, 'safe_path', False) "
            "else sys.path[1:]; "
            f"sys.path.insert(0, {str(Path(__file__).parent.parent)!r}); "
            "import ocdec.warm as warm; warm.FRESH_PATH[:] = fresh; warm.main()")
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    # this run's jobs only, as each rule's log holds its last job's
    out = open(log_file, "wb") if log_file else subprocess.DEVNULL  # noqa: SIM115
    lock = -1
    try:
        # locked here, before any job can look, and held by the server alone once it runs
        lock = os.open(directory / IMPORTING, os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)  # may fail on a file system without locks
        _server = subprocess.Popen(
            [sys.executable, "-c", code, str(path), "--parent", str(os.getpid()),
             "--importing-fd", str(lock)], pass_fds=(lock,),
            # os.environ, as Snakemake passes to each job (a library's C-level setenv, such as
            # curses' COLUMNS, would otherwise reach the server and no job)
            env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True)
    except OSError as err:
        del os.environ[ENV]
        log.warning("warm interpreter not started (%s): every job imports its own", err)
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
        return None
    finally:
        if lock >= 0:
            os.close(lock)
        if out is not subprocess.DEVNULL:
            out.close()  # type: ignore[union-attr]
    return path


def stop() -> None:
    """End the server :func:`start` launched (the workflow's ``onsuccess`` and ``onerror``);
    jobs still running in it are stopped. Without it the server ends within a second of the
    workflow's process."""
    global _server
    path = os.environ.pop(ENV, None)
    if _server is not None:
        _server.terminate()
        import subprocess

        try:  # its jobs get GRACE_S per signal
            _server.wait(timeout=len(CANCEL_SIGNALS) * GRACE_S + 5)
        except subprocess.TimeoutExpired:  # still stopping its jobs: it exits by itself
            pass
        else:  # gone (even if stopped before it could tidy up): its directory too
            import shutil

            if path and Path(path).parent.name.startswith("ocdec-warm-"):
                shutil.rmtree(Path(path).parent, ignore_errors=True)
        _server = None


def _stopped_while_importing(socket_path: Path) -> Any:
    """SIGTERM's handler until the server listens (stop() during the imports): remove what the
    server has made (start()'s directory, its lock, a socket bound but not yet listened on) and
    exit at once. Not a SystemExit: raised inside a library's callback (JAX's garbage-collection
    hook) it is printed and ignored, and the server would go on importing and listen."""
    def handler(*_: Any) -> None:
        directory = socket_path.parent
        try:
            if directory.name.startswith("ocdec-warm-"):
                for name in os.listdir(directory):  # no import here: one may be under way
                    os.unlink(directory / name)
                os.rmdir(directory)
            else:
                os.unlink(socket_path.with_name(IMPORTING))
        except OSError:
            pass
        os._exit(0)

    return handler


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ocdec.warm",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("socket", help="Unix socket path to listen on")
    parser.add_argument("--parent", type=int, default=None,
                        help="exit when this process (the workflow) has ended")
    parser.add_argument("--importing-fd", type=int, default=None,
                        help="a locked file descriptor to close once listening")
    args = parser.parse_args(argv)
    if not FRESH_PATH:  # started as python -m ocdec.warm: sys.path[0] is the directory
        FRESH_PATH[:] = sys.path if getattr(sys.flags, "safe_path", False) else sys.path[1:]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s ocdec.warm: %(message)s")
    # stop() during the imports
    signal.signal(signal.SIGTERM, _stopped_while_importing(Path(args.socket)))
    owner = os.getpid()
    try:
        serve(args.socket, args.parent, importing_fd=args.importing_fd)
    finally:
        if os.getpid() == owner and Path(args.socket).parent.name.startswith("ocdec-warm-"):
            Path(args.socket).with_name(IMPORTING).unlink(missing_ok=True)
            try:
                Path(args.socket).parent.rmdir()  # start()'s directory, once empty
            except OSError:
                pass


if __name__ == "__main__":
    main()
