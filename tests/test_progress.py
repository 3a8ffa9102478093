"""Progress of long work: a bar on a terminal, plain periodic log lines in a file or rule log."""

from __future__ import annotations

import io
import logging

import pytest

from ocdec.progress import Progress, choose_mode, track


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_forced_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCDEC_PROGRESS", raising=False)


def test_terminal_gets_a_bar_and_no_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    stream = Terminal()
    with caplog.at_level(logging.INFO, logger="ocdec"):
        with Progress("NGC_2682: download", 1000, unit="rows", every_s=0,
                      logger=logging.getLogger("ocdec.test"), stream=stream) as progress:
            assert progress.mode == "bar"
            for _ in range(4):
                progress.update(250, chunks="1/4")
    drawn = stream.getvalue()
    assert "NGC_2682: download" in drawn and "100%" in drawn and "\r" in drawn
    assert not [r for r in caplog.records if r.name == "ocdec.test"]


def test_file_gets_log_lines_and_no_bar(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    with open(tmp_path / "rule.log", "w") as stream:
        assert choose_mode(stream) == "log"
        with caplog.at_level(logging.INFO, logger="ocdec"):
            with Progress("DEC seed 0 cluster", 30, unit="epoch", every_s=3600,
                          logger=logging.getLogger("ocdec.test"), stream=stream) as progress:
                for epoch in range(30):
                    progress.update(1, loss=0.5 / (epoch + 1), label_change="0.1%")
    assert (tmp_path / "rule.log").read_text() == ""  # nothing drawn on the log's stream
    lines = [r.getMessage() for r in caplog.records if r.name == "ocdec.test"]
    # the first and the last state only: every_s spaces out the rest
    assert lines == ["DEC seed 0 cluster: 1/30 epoch, loss 0.5, label change 0.1%",
                     "DEC seed 0 cluster: 30/30 epoch, loss 0.016667, label change 0.1%"]
    assert not any("\r" in line or "%|" in line for line in lines)


def test_log_lines_follow_the_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    with caplog.at_level(logging.INFO, logger="ocdec"):
        with Progress("regions", None, unit="regions", every_s=10, mode="log",
                      logger=logging.getLogger("ocdec.test"), clock=lambda: now[0]) as progress:
            for _ in range(25):
                progress.update(1)
                now[0] += 1.0
    lines = [r.getMessage() for r in caplog.records if r.name == "ocdec.test"]
    assert lines == ["regions: 1 regions", "regions: 11 regions", "regions: 21 regions",
                     "regions: 25 regions"]


def test_environment_forces_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCDEC_PROGRESS", "log")
    assert choose_mode(Terminal()) == "log"
    monkeypatch.setenv("OCDEC_PROGRESS", "off")
    assert list(track(range(3), "quiet")) == [0, 1, 2]


def test_dec_training_reports_epochs(caplog: pytest.LogCaptureFixture) -> None:
    """DEC logs its epochs, loss and label change through Progress when not on a terminal."""
    np = pytest.importorskip("numpy")
    from ocdec.methods.dec import DecSettings, fit_dec

    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 1, (200, 3)), rng.normal(5, 1, (200, 3))]).astype("float32")
    settings = DecSettings(hidden=(8, 2), pretrain_epochs=2, cluster_epochs=3, batch_size=64,
                           log_every_s=0.0, tol=0.0)
    with caplog.at_level(logging.INFO, logger="ocdec"):
        fit_dec(x, 2, settings, seed=0)
    lines = [r.getMessage() for r in caplog.records if r.name == "ocdec.methods.dec"]
    assert "DEC seed 0 pretrain: 1/2 epoch, loss" in "\n".join(lines)
    assert any(line.startswith("DEC seed 0 cluster: ") and "label change" in line
               for line in lines)
