"""``python scripts/bench region|scaling|report ...`` (or ``python -m bench ...`` from scripts/):
the benchmark's command line (:mod:`bench.cli`); ``_job SPEC RESULT`` runs one measured job in
this fresh process (:func:`bench.jobs.child_main`)."""

import sys
from pathlib import Path

if not __package__:
    # Run as a folder: import the package from scripts/, not its modules from scripts/bench/.
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != here]
    sys.path.insert(0, str(Path(here).parent))

if __name__ == "__main__":
    if sys.argv[1:2] == ["_job"]:
        from bench.jobs import child_main

        sys.exit(child_main(sys.argv[2], sys.argv[3]))
    from bench.cli import main

    sys.exit(main())
