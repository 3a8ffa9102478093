"""Stored programs (ocdec.stored_programs): a compiled executable written once, loaded by later
processes without tracing, giving jax.jit's results to the bit; keyed by everything it depends on;
always compiled afresh, never taken from JAX's own cache (such executables lose their kernels on
CPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

# A child process: set the cache (or not), run the program on fixed inputs, report its outputs,
# whether the Python function was traced, and what the store did.
CHILD = r"""
import json, sys
sys.path.insert(0, {scripts!r})
import numpy as np
import jax, jax.numpy as jnp
from ocdec.compilation_cache import enable_compilation_cache
from ocdec import stored_programs as sp

traced = []

def f(x, key, *, scale, shift):
    traced.append(1)
    noise = jax.random.normal(key, x.shape)
    return jnp.sin(x * scale) + jnp.arange(x.shape[0]) * shift + noise

program = sp.StoredProgram(f, static_argnames=("scale", "shift"))
cache = {cache!r}
if cache:
    enable_compilation_cache(cache)
if {plain_jit_first!r}:
    jax.jit(f, static_argnames=("scale", "shift"))(np.ones(64, np.float32), jax.random.key(1),
                                                   scale=1.5, shift=0.25)
    traced.clear()
x = np.linspace(0, 3, {n}, dtype=np.float32)
out = program(x, jax.random.key(1), scale={scale!r}, shift=0.25)
again = program(x, jax.random.key(1), scale={scale!r}, shift=0.25)
json.dump({{"out": np.asarray(out).tolist(), "again": np.asarray(again).tolist(),
           "traced": len(traced), "stats": sp.STATS}}, sys.stdout)
"""


def _child(cache: Path | None, *, n: int = 64, scale: float = 1.5,
           plain_jit_first: bool = False) -> dict:
    code = CHILD.format(scripts=str(SCRIPTS), cache=str(cache) if cache else "", n=n,
                        scale=scale, plain_jit_first=plain_jit_first)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / "executables").glob("*/*.pkl"))


def test_a_stored_program_is_loaded_untraced_with_jits_results(tmp_path) -> None:
    """The first process compiles and stores; the next loads it without tracing the function,
    and both give what plain jax.jit gives, to the bit. Other static values or shapes are other
    entries."""
    cache = tmp_path / "jax"
    plain = _child(None)
    # no cache: plain jit
    assert plain["stats"] == {"loaded": 0, "compiled": 0, "unstored": 0, "failed": 0}

    first = _child(cache)
    assert first["stats"] == {"loaded": 0, "compiled": 1, "unstored": 0, "failed": 0}
    assert len(_entries(cache)) == 1
    second = _child(cache)
    assert second["stats"] == {"loaded": 1, "compiled": 0, "unstored": 0, "failed": 0}
    assert second["traced"] == 0
    for run in (first, second):
        np.testing.assert_array_equal(run["out"], plain["out"])
        np.testing.assert_array_equal(run["again"], plain["out"])

    other_static = _child(cache, scale=2.0)
    other_shape = _child(cache, n=80)
    assert other_static["stats"]["compiled"] == other_shape["stats"]["compiled"] == 1
    assert len(_entries(cache)) == 3
    assert not np.allclose(other_static["out"], plain["out"])


def test_a_damaged_entry_is_compiled_again(tmp_path) -> None:
    """A truncated entry is not run: the program is compiled afresh, stored whole again, and
    gives the same results."""
    cache = tmp_path / "jax"
    want = _child(cache)["out"]
    (entry,) = _entries(cache)
    entry.write_bytes(entry.read_bytes()[:100])
    again = _child(cache)
    assert again["stats"] == {"loaded": 0, "compiled": 1, "unstored": 0, "failed": 0}
    np.testing.assert_array_equal(again["out"], want)
    loaded = _child(cache)
    assert loaded["stats"]["loaded"] == 1
    np.testing.assert_array_equal(loaded["out"], want)


def test_a_program_in_jaxs_cache_is_compiled_afresh_for_the_store(tmp_path) -> None:
    """JAX's cache holds the program (as after any change to ocdec, whose source is in the
    store's key but not in JAX's): the store's entry is still a fresh compilation, not JAX's
    cached executable, which loses its kernels when serialized on CPU and fails when run
    ("Function ... not found")."""
    cache = tmp_path / "jax"
    want = _child(None)["out"]
    _child(cache, plain_jit_first=True)  # JAX's cache now holds the program
    for entry in _entries(cache):
        entry.unlink()
    again = _child(cache)
    assert again["stats"] == {"loaded": 0, "compiled": 1, "unstored": 0, "failed": 0}
    loaded = _child(cache)
    assert loaded["stats"]["loaded"] == 1
    np.testing.assert_array_equal(loaded["out"], want)
    np.testing.assert_array_equal(again["out"], want)


# A child process that puts into the store, in place of the program's entry, the executable
# JAX's cache holds for it (serialized on CPU without its kernels: it loads, and fails when its
# result is read).
POISON = CHILD.split("x = np.linspace")[0] + r"""
import pickle
from jax.experimental import serialize_executable
x = np.linspace(0, 3, 64, dtype=np.float32)
jitted = jax.jit(f, static_argnames=("scale", "shift"))
compiled = jitted.lower(x, jax.random.key(1), scale=1.5, shift=0.25).compile()  # JAX's cache
leaves, tree = jax.tree_util.tree_flatten(((x, jax.random.key(1)), {{}}))
key = (tree, tuple(sp._leaf_signature(v) for v in leaves), (("scale", 1.5), ("shift", 0.25)))
path = program._entry(sp._directory(), key)
assert path.exists(), path
path.write_bytes(pickle.dumps(serialize_executable.serialize(compiled)))
"""


def test_an_entry_without_its_kernels_is_compiled_afresh(tmp_path) -> None:
    """A stored executable that loads but fails when its result is read (one JAX read from its
    own cache: "Function ... not found") is removed and the program compiled afresh and stored:
    the caller gets the program's result, and the next process loads the good entry."""
    cache = tmp_path / "jax"
    want = _child(None)["out"]
    _child(cache, plain_jit_first=True)  # JAX's cache and the store hold the program
    code = POISON.format(scripts=str(SCRIPTS), cache=str(cache), plain_jit_first=False)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    again = _child(cache)
    np.testing.assert_array_equal(again["out"], want)
    np.testing.assert_array_equal(again["again"], want)
    if again["stats"]["failed"] == 0:
        pytest.skip("this JAX serializes its cached executables whole: nothing to recover")
    assert again["stats"] == {"loaded": 1, "compiled": 1, "unstored": 0, "failed": 1}
    loaded = _child(cache)
    assert loaded["stats"] == {"loaded": 1, "compiled": 0, "unstored": 0, "failed": 0}
    np.testing.assert_array_equal(loaded["out"], want)


def test_a_programs_own_error_is_not_retried(tmp_path, monkeypatch) -> None:
    """An error of the program itself (out of memory, say) from a loaded executable reaches the
    caller; the entry is kept and nothing is compiled."""
    import jax
    import jax.numpy as jnp
    from jax.experimental import serialize_executable

    from ocdec import stored_programs as sp

    monkeypatch.setattr(sp, "_directory", lambda: tmp_path / "executables")
    monkeypatch.setattr(sp, "STATS", dict.fromkeys(sp.STATS, 0))
    program = sp.StoredProgram(lambda x, *, k: jnp.cumsum(x) * k, static_argnames=("k",))
    x = np.arange(10, dtype=np.float32)
    program(x, k=3)  # compiled and stored
    (entry,) = sorted((tmp_path / "executables").glob("*/*.pkl"))

    class Exhausted:
        def __call__(self, *args, **kwargs):
            raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory")

    monkeypatch.setattr(serialize_executable, "deserialize_and_load", lambda *a: Exhausted())
    fresh = sp.StoredProgram(program._fun, static_argnames=("k",))  # a new process's
    with pytest.raises(jax.errors.JaxRuntimeError, match="RESOURCE_EXHAUSTED"):
        fresh(x, k=3)
    assert sp.STATS == {"loaded": 1, "compiled": 1, "unstored": 0, "failed": 0}
    assert entry.exists()


def test_a_damaged_entry_on_a_read_only_disk_still_runs(tmp_path, monkeypatch) -> None:
    """A damaged entry that cannot be removed, in a folder that cannot be written: the program
    is compiled and runs, with warnings."""
    import jax.numpy as jnp

    from ocdec import stored_programs as sp

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(sp, "_directory", lambda: tmp_path / "executables")
    monkeypatch.setattr(sp, "STATS", dict.fromkeys(sp.STATS, 0))
    program = sp.StoredProgram(lambda x: jnp.cumsum(x) + 1)
    x = np.arange(6, dtype=np.float32)
    program(x)
    (entry,) = sorted((tmp_path / "executables").glob("*/*.pkl"))
    entry.write_bytes(entry.read_bytes()[:50])
    monkeypatch.setattr(Path, "unlink", read_only)
    monkeypatch.setattr(sp, "_write_atomically", read_only)
    fresh = sp.StoredProgram(program._fun)
    np.testing.assert_array_equal(fresh(x), np.cumsum(x) + 1)
    assert sp.STATS == {"loaded": 0, "compiled": 2, "unstored": 1, "failed": 0}
    assert entry.stat().st_size == 50  # left as it was


def test_a_cache_that_cannot_be_written_still_runs_the_program(tmp_path, monkeypatch) -> None:
    """A compilation cache on a disk that is full or read-only stores nothing, with a warning;
    the program runs as jax.jit would."""
    import jax.numpy as jnp

    from ocdec import stored_programs as sp

    def refuse(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sp, "_directory", lambda: tmp_path / "executables")
    monkeypatch.setattr(sp, "STATS", dict.fromkeys(sp.STATS, 0))
    monkeypatch.setattr(sp, "_write_atomically", refuse)
    program = sp.StoredProgram(lambda x: jnp.cumsum(x) * 2)
    x = np.arange(7, dtype=np.float32)
    np.testing.assert_array_equal(program(x), np.cumsum(x) * 2)
    assert sp.STATS == {"loaded": 0, "compiled": 1, "unstored": 1, "failed": 0}
    assert not list((tmp_path / "executables").glob("*/*.pkl"))


def test_other_environments_folders_are_removed_when_stale(tmp_path) -> None:
    """Entries sit in one folder per environment (ocdec's source, libraries, CPU); a new one
    removes the folders unused for STALE_DAYS, and keeps those in use."""
    import os
    import time

    from ocdec.stored_programs import STALE_DAYS

    cache = tmp_path / "jax"
    stale, recent = cache / "executables" / "0ld", cache / "executables" / "recent"
    for folder in (stale, recent):
        folder.mkdir(parents=True)
        (folder / "p-1.pkl").write_bytes(b"x")
    old = time.time() - (STALE_DAYS + 1) * 86400
    os.utime(stale, (old, old))
    assert _child(cache)["stats"]["compiled"] == 1
    assert not stale.exists() and (recent / "p-1.pkl").exists()
    (entry,) = [e for e in _entries(cache) if e.parent != recent]
    assert entry.parent.parent == cache / "executables"


def test_the_key_names_code_libraries_and_machine() -> None:
    """Every entry's key includes the ocdec sources, the libraries' versions and the CPU."""
    pytest.importorskip("jax")
    from ocdec import stored_programs as sp

    env = sp._environment()
    assert f"jax {__import__('jax').__version__}" in env
    assert "flax" in env and "optax" in env
    digest = env.splitlines()[0]
    assert len(digest) == 64 and int(digest, 16) >= 0
