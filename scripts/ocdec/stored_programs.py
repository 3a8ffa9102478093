"""Compiled JAX programs kept on disk and loaded without tracing or lowering.

JAX's persistent compilation cache (:mod:`ocdec.compilation_cache`) saves the XLA compilation,
but each process still traces a program's Python into a jaxpr and lowers it to StableHLO before
it can look the compiled program up: measured on the 2-core VM, 0.5-0.6 s of a found region's
characterization (DEC's programs) and 0.5-0.7 s of its 0.9-s parameters job (the isochrone
fit's), every region, for programs an earlier region already compiled. A :class:`StoredProgram`
is a ``jax.jit`` whose compiled executable is also written, once per input signature, next to
that cache (``<cache>/executables``) and read back by later processes with
``jax.experimental.serialize_executable``: no tracing, no lowering, no compiler. The executable
is the one ``jax.jit`` builds for those inputs, so the results are the same to the bit
(tests/test_stored_programs.py). What is stored is always compiled afresh, not read from JAX's
cache (:func:`_fresh_compilation`): an executable JAX read from there serializes, on CPU, without
its compiled kernels.

An entry is keyed by everything the compiled program depends on: the program's name, the tree
and abstract values (shape, dtype, weak type) of its array arguments, its static arguments (by
``repr``, or by a fingerprint function where the repr is not a faithful description), the
source of every ocdec module (any code change makes new entries), the versions of JAX, jaxlib,
Flax, Optax and numpy, the JAX settings that change lowering, and the device and CPU flags (a
program compiled for one CPU is never run on another, as on a cluster's shared disk); the
environment's part names a folder of its own, and folders unused for :data:`STALE_DAYS` days are
removed when a new one is made. Without a compilation cache directory a StoredProgram is plain
``jax.jit``. An entry that cannot be read, or whose first run finds a kernel missing, is removed
and the program compiled afresh; a directory that cannot be written only means nothing is
stored. Loading an executable runs code from the directory: keep it one only you can write to
(as JAX's cache).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import pickle
import platform
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax

log = logging.getLogger(__name__)

SUBDIR = "executables"

# counted per process: what tests and benchmarks read
STATS = {"loaded": 0, "compiled": 0, "unstored": 0, "failed": 0}


_CACHE_HITS = {"n": 0}


def _count_cache_hits(event: str, **_: Any) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _CACHE_HITS["n"] += 1


jax.monitoring.register_event_listener(_count_cache_hits)


def _directory() -> Path | None:
    """``<JAX's compilation cache>/executables``, or None where no cache is set."""
    cache = jax.config.jax_compilation_cache_dir
    return Path(cache) / SUBDIR if cache else None


@functools.cache
def _environment() -> str:
    """What every entry depends on beyond its program: code, libraries, settings, machine."""
    import flax
    import jaxlib
    import numpy as np
    import optax

    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    device = jax.devices()[0]
    parts = [
        digest.hexdigest(),
        f"jax {jax.__version__} jaxlib {jaxlib.__version__} flax {flax.__version__} "
        f"optax {optax.__version__} numpy {np.__version__}",
        f"{device.platform} {device.device_kind} {platform.machine()} {_cpu_flags()}",
    ]
    for name in ("jax_enable_x64", "jax_default_matmul_precision", "jax_default_prng_impl",
                 "jax_threefry_partitionable", "jax_numpy_rank_promotion"):
        parts.append(f"{name}={getattr(jax.config, name, None)!r}")
    return "\n".join(parts)


def _cpu_flags() -> str:
    """The CPU's instruction-set flags (Linux), which XLA's CPU code is compiled for."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return hashlib.sha256(line.encode()).hexdigest()[:16]
    except OSError:
        pass
    return platform.processor() or "unknown"


# Folders of other environments (another ocdec version, JAX version or CPU) untouched this long
# are removed when a new one is made: entries do not pile up version after version, and a
# folder another installation still uses (a shared disk) is kept.
STALE_DAYS = 14


def _environment_folder(directory: Path) -> Path:
    """``directory/<environment digest>``: one folder per environment (:func:`_environment`).
    Its time is touched once per process, so that it counts as in use."""
    folder = directory / hashlib.sha256(_environment().encode()).hexdigest()[:20]
    if folder not in _TOUCHED:
        _TOUCHED.add(folder)
        try:
            if not folder.is_dir():
                _remove_stale(directory)
                folder.mkdir(parents=True, exist_ok=True)
            os.utime(folder)
        except OSError as err:  # a cache one may read but not write: load what is there
            log.debug("stored programs' folder %s: %s", folder, err)
    return folder


_TOUCHED: set[Path] = set()


def _remove_stale(directory: Path) -> None:
    import shutil
    import time

    if not directory.is_dir():
        return
    cutoff = time.time() - STALE_DAYS * 86400
    for other in directory.iterdir():
        try:
            if other.is_dir() and other.stat().st_mtime < cutoff:
                shutil.rmtree(other, ignore_errors=True)
                log.info("removed stored programs unused for %d days: %s", STALE_DAYS, other)
        except OSError:
            pass


def _leaf_signature(x: Any) -> tuple:
    aval = jax.typeof(x)
    return (tuple(aval.shape), str(aval.dtype), bool(getattr(aval, "weak_type", False)))


class StoredProgram:
    """``jax.jit(fun, static_argnames=...)`` whose executables are stored on disk (module doc).

    Static arguments are passed by keyword. ``fingerprints`` maps a static argument's name to a
    function giving a deterministic string for its value, where ``repr`` is not one (an
    object's address, a closure's captured values)."""

    def __init__(self, fun: Callable, *, static_argnames: Sequence[str] = (),
                 fingerprints: Mapping[str, Callable[[Any], str]] | None = None) -> None:
        self._fun = fun
        self._name = f"{fun.__module__}.{fun.__qualname__}"
        self._static = tuple(static_argnames)
        self._fingerprints = dict(fingerprints or {})
        self._jit = jax.jit(fun, static_argnames=self._static)
        self._loaded: dict[tuple, Any] = {}
        functools.update_wrapper(self, fun)

    @property
    def jit(self) -> Any:
        """The plain ``jax.jit`` of the program (what a call runs without a cache directory)."""
        return self._jit

    def _cache_size(self) -> int:
        """Programs this process holds (as ``jax.jit``'s): one per input signature."""
        return self._jit._cache_size() + len(self._loaded)

    def lower(self, *args: Any, **kwargs: Any) -> Any:
        """``jax.jit(...).lower``: the program lowered for these arguments (never stored)."""
        return self._jit.lower(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        directory = _directory()
        if directory is None:
            return self._jit(*args, **kwargs)
        statics = tuple((k, kwargs.pop(k)) for k in self._static if k in kwargs)
        leaves, tree = jax.tree_util.tree_flatten((args, kwargs))
        key = (tree, tuple(_leaf_signature(x) for x in leaves), statics)
        compiled = self._loaded.get(key)
        if compiled is not None:
            return compiled(*args, **kwargs)
        path = self._entry(directory, key)
        compiled = self._load(path)
        if compiled is not None:
            try:
                # waited for: CPU work runs in the background, and a missing kernel is
                # reported only when the result is ready
                out = jax.block_until_ready(compiled(*args, **kwargs))
            except jax.errors.JaxRuntimeError as err:
                if not _missing_kernel(err):
                    raise  # the program's own error (memory, say): a fresh compile repeats it
                # a loaded executable without its kernels (as JAX-cache executables were)
                log.warning("the stored program %s failed (%s): compiling it", path, err)
                _discard(path)
                STATS["failed"] += 1
            else:
                self._loaded[key] = compiled
                return out
        compiled = self._compile_and_store(path, args, kwargs, dict(statics))
        self._loaded[key] = compiled
        return compiled(*args, **kwargs)

    def _entry(self, directory: Path, key: tuple) -> Path:
        tree, signature, statics = key
        described = [f"{k}={self._fingerprints.get(k, repr)(v)}" for k, v in statics]
        text = "\n".join([self._name, str(tree), repr(signature), *described])
        digest = hashlib.sha256(text.encode()).hexdigest()
        return _environment_folder(directory) / f"{self._fun.__name__}-{digest[:32]}.pkl"

    def _load(self, path: Path) -> Any:
        """The stored executable at ``path``, or None (none there, or one that cannot be read:
        removed)."""
        from jax.experimental import serialize_executable

        try:
            if not path.exists():
                return None
            with open(path, "rb") as f:
                payload, in_tree, out_tree = pickle.load(f)
            compiled = serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
        except Exception as err:  # a truncated or foreign entry: compile it again
            log.warning("could not load the stored program %s (%s): compiling it", path, err)
            _discard(path)
            return None
        STATS["loaded"] += 1
        log.debug("loaded %s from %s", self._name, path)
        return compiled

    def _compile_and_store(self, path: Path, args: tuple, kwargs: dict, statics: dict) -> Any:
        from jax.experimental import serialize_executable

        lowered = self._jit.lower(*args, **kwargs, **statics)
        hits = _CACHE_HITS["n"]
        with _fresh_compilation():
            compiled = lowered.compile()
        STATS["compiled"] += 1
        if _CACHE_HITS["n"] != hits:  # a guard: _fresh_compilation should prevent it
            STATS["unstored"] += 1
            log.debug("%s came from JAX's compilation cache: not stored", self._name)
            return compiled
        try:
            stored = pickle.dumps(serialize_executable.serialize(compiled))
        except (ValueError, NotImplementedError, TypeError, pickle.PicklingError) as err:
            STATS["unstored"] += 1
            log.debug("%s not stored: %s", self._name, err)
            return compiled
        try:
            _write_atomically(path, stored)
        except OSError as err:
            STATS["unstored"] += 1
            log.warning("could not store the program %s (%s)", path, err)
        return compiled


@contextlib.contextmanager
def _fresh_compilation() -> Iterator[None]:
    """Compile without reading JAX's persistent cache (nor writing it): an executable JAX read
    from there serializes, on CPU, without its compiled kernels ("Function ... not found" when
    run after loading), and JAX's cache, keyed by the lowered program, holds every program an
    earlier version of ocdec compiled, where the store's entries are new with each version.
    JAX decides whether to use its cache once per process: ``reset_cache`` makes it look again
    at the setting, here off, and after the compilation on."""
    from jax.experimental.compilation_cache import compilation_cache

    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
    try:
        yield
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)
        compilation_cache.reset_cache()


def _missing_kernel(err: Exception) -> bool:
    """Whether a run failed for a kernel its executable lacks ("NOT_FOUND: Function ... not
    found"), as an executable serialized from JAX's cache does on CPU."""
    return "NOT_FOUND" in str(err)


def _discard(path: Path) -> None:
    """Remove an entry that cannot serve; on a disk that cannot be written it stays, and the
    program is compiled in each process that reads it."""
    try:
        path.unlink(missing_ok=True)
    except OSError as err:
        log.warning("could not remove the stored program %s (%s)", path, err)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stored_program(*, static_argnames: Sequence[str] = (),
                   fingerprints: Mapping[str, Callable[[Any], str]] | None = None
                   ) -> Callable[[Callable], StoredProgram]:
    """Decorator form of :class:`StoredProgram`."""
    return functools.partial(StoredProgram, static_argnames=static_argnames,
                             fingerprints=fingerprints)
