"""The allocator setting of ocdec's processes (ocdec.allocator): freed blocks of the peak search's
grid sizes are reused instead of coming back from the kernel as fresh pages, one fault each."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ocdec import allocator

# A process that allocates, touches and frees arrays of the peak search's grid sizes (0.16-3.2 MB,
# a few alive at once) and prints its minor page faults; "keep" sets the allocator first.
CHURN = """
import resource, sys
import numpy as np
from ocdec.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
rng = np.random.default_rng(0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
live = []
for n in rng.integers(20_000, 400_000, 400):
    a = np.zeros(n)
    a += 1.0
    live.append(a)
    if len(live) > 3:
        live.pop(0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, env: dict[str, str]) -> int:
    out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True,
                         env=env, check=True)
    return int(out.stdout.split()[-1])


def _env() -> dict[str, str]:
    """This environment without what would change the allocator (its variables and tunables,
    a preloaded one)."""
    drop = {*allocator.USER_VARIABLES, "GLIBC_TUNABLES", "LD_PRELOAD"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _glibc_env() -> dict[str, str]:
    """:func:`_env`, or a skip where this C library has no mallopt (not glibc)."""
    env = _env()
    if subprocess.run([sys.executable, "-c", "from ocdec.allocator import keep_freed_memory;"
                       "raise SystemExit(0 if keep_freed_memory() else 1)"],
                      env=env).returncode:
        pytest.skip("this C library has no mallopt (not glibc)")
    return env


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_grids_are_reused_instead_of_faulted_in_again() -> None:
    env = _glibc_env()
    default, kept = _faults("default", env), _faults("keep", env)
    # about 92,000 faults with glibc's defaults against 7,000 (measured)
    assert kept * 4 < default


@pytest.mark.parametrize(("name", "value"), [
    ("MALLOC_TRIM_THRESHOLD_", "131072"),
    ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536"),
])
def test_the_users_own_allocator_settings_win(monkeypatch, name, value) -> None:
    for other in (*allocator.USER_VARIABLES, "GLIBC_TUNABLES"):
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(name, value)
    assert allocator.keep_freed_memory() is False


# A process with the allocator set that frees 240 MB of 4 MB blocks held below a live one (so
# the heap cannot trim them from its top), and prints its anonymous memory in MB before and
# after release_freed_memory.
RELEASE = """
import numpy as np
from ocdec.allocator import keep_freed_memory, release_freed_memory
assert keep_freed_memory()
def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) // 1024
blocks = [np.ones(500_000) for _ in range(60)]
top = np.ones(1000)
del blocks
before = anon()
release_freed_memory()
print(before, anon())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim: Linux only")
def test_freed_memory_goes_back_to_the_kernel_when_released() -> None:
    env = _glibc_env()
    out = subprocess.run([sys.executable, "-c", RELEASE], capture_output=True, text=True,
                         env=env, check=True)
    before, after = (int(v) for v in out.stdout.split())
    assert before - after > 200  # the 240 MB kept for reuse, handed back
