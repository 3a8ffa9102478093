"""The ``local`` source: a user's star file (any format and column naming
:func:`ocdec.data.columns.read_stars` reads) kept as canonical Parquet with its provenance."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ocdec.data.columns import read_stars
from ocdec.data.quality import require_essential
from ocdec.io import check_writable, write_parquet


def local_to_parquet(source: str | os.PathLike[str], path: str | os.PathLike[str]
                     ) -> pd.DataFrame:
    """The read_local rule: read ``source``, write it to ``path`` (atomically) with provenance
    (the file it came from, its rows, whether source_id is a row number)."""
    source = Path(source)
    check_writable(path, "stars")
    frame = read_stars(source)
    require_essential(frame)  # a misnamed column is the user's to fix, not a skipped region
    provenance = {
        "source": "local",
        "path": str(source.resolve()),
        "rows": len(frame),
        "source_id_is_row": bool(frame.attrs.get("source_id_is_row", False)),
    }
    write_parquet(path, frame, provenance)
    return frame
