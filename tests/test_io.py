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


def test_parquet_dictionary_pages_only_for_text(tmp_path: Path) -> None:
    """Numbers (nearly all distinct in a star table) are written plain; text keeps its
    dictionary; every column reads back as it was."""
    import pyarrow.parquet as pq

    n = 5_000
    frame = pd.DataFrame({"source_id": range(n), "parallax": [0.5 + i * 1e-3 for i in range(n)],
                          "flag": ["VARIABLE" if i % 7 else "NOT" for i in range(n)],
                          "kind": pd.Categorical(["a", "b"] * (n // 2)),
                          "member": [i % 3 == 0 for i in range(n)]})
    write_parquet(tmp_path / "t.parquet", frame)
    meta = pq.ParquetFile(tmp_path / "t.parquet").metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings
                 for i in range(meta.num_columns)}
    for name in ("source_id", "parallax", "member"):
        assert not any("DICTIONARY" in e for e in encodings[name]), (name, encodings[name])
    for name in ("flag", "kind"):
        assert any("DICTIONARY" in e for e in encodings[name]), (name, encodings[name])
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), frame)


def test_atomic_products_are_readable_like_plain_files(tmp_path: Path) -> None:
    import os

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644


# -- filesystem problems are one line, found before the work -----------------------------------


def test_check_writable_names_the_problem_before_any_work(tmp_path: Path) -> None:
    from ocdec.errors import OcdecError
    from ocdec.io import check_writable, check_writable_dir

    assert check_writable(tmp_path / "new" / "deeper" / "out.parquet") == (
        tmp_path / "new" / "deeper" / "out.parquet")
    (tmp_path / "existing.parquet").write_text("old")
    check_writable(tmp_path / "existing.parquet")  # an old product is overwritten: fine
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    cases = {
        tmp_path / "adir": "is an existing directory",
        tmp_path / "afile" / "out.parquet": "is a file, not a directory",
        tmp_path / "afile" / "sub" / "out.parquet": "is a file, not a directory",
    }
    for path, expected in cases.items():
        with pytest.raises(OcdecError) as err:
            check_writable(path)
        assert expected in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(OcdecError, match="is an existing file"):
        check_writable_dir(tmp_path / "afile")
    assert check_writable_dir(tmp_path / "adir") == tmp_path / "adir"


def test_os_errors_are_described_in_one_line() -> None:
    import errno

    from ocdec.io import describe_os_error

    full = OSError(errno.ENOSPC, "No space left on device", "/data/x.parquet")
    assert describe_os_error(full) == ("/data/x.parquet: No space left on device; free some "
                                       "space, or write elsewhere")
    assert describe_os_error(IsADirectoryError(errno.EISDIR, "Is a directory", "o")).startswith(
        "o: Is a directory; give a file name")


def test_exclusive_lock_lets_one_writer_in_and_cleans_up(tmp_path: Path) -> None:
    import os
    import threading
    import time

    from ocdec.errors import OcdecError
    from ocdec.io import exclusive_lock

    lock = tmp_path / ".out.lock"
    with exclusive_lock(lock, what="out") as waited:
        assert not waited and str(os.getpid()) in lock.read_text()
        with pytest.raises(OcdecError, match=r"out: another process \(pid \d+"):
            with exclusive_lock(lock, what="out"):
                pass
    assert not lock.exists()

    order: list[str] = []
    held = threading.Event()

    def holder() -> None:
        with exclusive_lock(lock):
            held.set()
            time.sleep(0.3)
            order.append("first done")

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    with exclusive_lock(lock, wait_s=10) as waited:
        order.append("second in")
        assert waited
    thread.join()
    assert order == ["first done", "second in"] and not lock.exists()


def test_rule_runner_logs_one_line_and_exits_non_zero(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import logging
    import sys
    import types

    from ocdec.errors import OcdecError
    from ocdec.logs import configure_logging
    from ocdec.runner import run_rule

    log_file = tmp_path / "rule.log"

    def failing(exc: BaseException) -> object:
        def main(smk: object) -> None:
            configure_logging(log_file)
            raise exc
        return main

    smk = types.SimpleNamespace(rule="quality")
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # configure_logging replaces it
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        for exc, line in [(OcdecError("x.csv: no column pmra"), "quality: x.csv: no column pmra"),
                          (OSError(errno.ENOSPC, "No space left on device", "o.parquet"),
                           "quality: o.parquet: No space left on device")]:
            with pytest.raises(SystemExit) as stop:
                run_rule(failing(exc), smk)
            assert stop.value.code == 1
            text = log_file.read_text()
            assert line in text.strip().splitlines()[-1] and "Traceback" not in text
        with pytest.raises(KeyError):  # a bug keeps its traceback
            run_rule(failing(KeyError("bug")), smk)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_filesystem_without_locks_goes_on_with_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import errno
    import fcntl

    from ocdec.io import exclusive_lock

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with exclusive_lock(tmp_path / ".out.lock") as waited:
        assert waited is False
    assert "does not support locks" in caplog.text and not (tmp_path / ".out.lock").exists()
