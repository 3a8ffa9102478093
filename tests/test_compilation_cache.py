"""JAX's persistent compilation cache: off without a directory, filled by a compilation with one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ocdec.compilation_cache import enable_compilation_cache


def test_no_directory_leaves_the_cache_off():
    assert enable_compilation_cache(None) is None
    assert enable_compilation_cache("  ") is None


def test_a_compiled_program_lands_in_the_cache_and_is_reused(tmp_path):
    # A fresh interpreter: the cache directory is process-wide JAX state.
    cache = tmp_path / "nested" / "jax"
    code = (
        "import sys, jax, jax.numpy as jnp\n"
        "from ocdec.compilation_cache import enable_compilation_cache\n"
        "print(enable_compilation_cache(sys.argv[1]))\n"
        "print(float(jax.jit(lambda v: (v * 2.0).sum())(jnp.arange(5.0))))\n"
    )
    outputs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code, str(cache)], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.split())
        if len(outputs) == 1:
            entries = sorted(p.name for p in cache.iterdir())
    assert Path(outputs[0][0]) == cache.absolute() and outputs[0][1] == "20.0"
    assert entries, "the first run wrote no cache entry"
    # The second run found its program there: no new entry, same result.
    assert sorted(p.name for p in cache.iterdir()) == entries and outputs[1][1] == "20.0"
