"""``python scripts/bench parameters``: time ``fit_parameters`` on one cluster (default: Hunt &
Reffert 2023 Pleiades members, from ../shared/data).

    python scripts/bench parameters [--cluster NAME] [--repeat 3]

The first run includes reading the PARSEC grid (cached as .npz after the first process) and the
JAX compilation; later runs are what each further cluster of a process costs.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bench import REPO


def parameters_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench parameters",
                                     description="time fit_parameters on one cluster")
    parser.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--cluster", default="Pleiades")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    base = Path(args.shared) / "members" / "hunt2023_nearby_clusters"
    ids = json.loads((base / "hunt2023.json").read_text())[args.cluster]
    astro = json.loads((base / "hunt2023-astro.json").read_text())
    frame = pd.DataFrame([dict(source_id=int(i), **astro[i]) for i in ids if i in astro])
    frame = frame.rename(columns={"plx": "parallax", "gmag": "phot_g_mean_mag", "bprp": "bp_rp",
                                  "prob": "p_member"})
    start = time.perf_counter()
    from ocdec.physics.parameters import fit_parameters

    print(f"import: {time.perf_counter() - start:.2f} s; {len(frame)} members of {args.cluster}; "
          f"{len(os.sched_getaffinity(0))} cores")
    for i in range(args.repeat):
        start = time.perf_counter()
        values = fit_parameters(frame).as_dict()
        print(f"run {i + 1}: {time.perf_counter() - start:.2f} s, status {values['status']}, "
              f"log age {values['log_age']:.3f}, A_V {values['av']:.3f}")
    return 0
