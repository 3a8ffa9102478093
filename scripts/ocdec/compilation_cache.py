"""JAX's persistent compilation cache, shared by every DEC job of a workflow run.

Each characterize job is a fresh process, so without a disk cache every region compiles the same
DEC programs again (measured: about 5 s of a 30,000-star region's 10 s of DEC on the 2-core VM).
The default method pads its DEC inputs to power-of-two buckets and thesis mode trains on at most
``dec_max_stars`` stars, so most regions run programs of shapes an earlier region compiled: with
the cache they load them from disk instead. Every program is cached (JAX's defaults keep only
programs that took over a second to compile, which none of DEC's does on CPU).

The cache is trusted code (JAX's warning): keep it in a directory only you can write to. It is
keyed by the program, the JAX version and the device, so a stale entry is never used for a
different program; deleting the directory is always safe.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_DIR = ".cache/jax"  # relative to the working directory (the workflow's)


def enable_compilation_cache(directory: str | os.PathLike[str] | None) -> Path | None:
    """Point JAX's persistent compilation cache at ``directory`` (created if missing); None or
    "" leaves it off. Call before the first compilation of the process. Returns the directory."""
    if directory is None or str(directory).strip() == "":
        return None
    import jax

    path = Path(directory).expanduser().absolute()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    log.info("JAX compilation cache: %s", path)
    return path
