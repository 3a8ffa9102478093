"""This checkout's library first in every process of a workflow run.

Snakemake writes each ``script:`` job's file under ``.snakemake/scripts`` and runs it with the
rule script's directory *appended* to its path, so a job in its own process would import an
``ocdec`` installed in the environment (a release, another clone's editable install) before
this checkout's, while the Snakefile and the warm interpreter import this one. The Snakefile
puts ``scripts/`` first on its own path and, through ``PYTHONPATH``, on its jobs'.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping


def put_first_on_pythonpath(directory: str, environ: MutableMapping[str, str] | None = None
                            ) -> None:
    """Put ``directory`` first in ``PYTHONPATH`` (of ``environ``, by default this process's
    environment, which the jobs inherit), unless it already is."""
    env = os.environ if environ is None else environ
    # as set: an empty entry is the working directory, which the jobs keep
    paths = env["PYTHONPATH"].split(os.pathsep) if env.get("PYTHONPATH") else []
    if paths[:1] != [directory]:
        env["PYTHONPATH"] = os.pathsep.join([directory, *paths])
