from pathlib import Path

import pandas as pd
import pytest

from ocdec.io import atomic_path, read_provenance, write_parquet


def test_atomic_path_leaves_nothing_when_the_block_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_parquet_round_trips_provenance(tmp_path: Path) -> None:
    frame = pd.DataFrame({"source_id": [1, 2], "parallax": [1.0, 2.0]})
    write_parquet(tmp_path / "a.parquet", frame, {"query": "SELECT 1", "rows": 2})
    assert read_provenance(tmp_path / "a.parquet") == {"query": "SELECT 1", "rows": 2}
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a.parquet"), frame)


def test_atomic_products_are_readable_like_plain_files(tmp_path: Path) -> None:
    import os

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
