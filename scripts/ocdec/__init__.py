"""ocdec: find and characterize open star clusters in Gaia data."""

from typing import Any


def __getattr__(name: str) -> Any:
    # __version__ on first use: importlib.metadata is a tenth of a second of every job's start-up
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("ocdec")
        except PackageNotFoundError:  # running from a source tree without installation
            value = "0.0.0+unknown"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
