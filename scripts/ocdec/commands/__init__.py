"""Subcommands of the ``ocdec`` command line, one module each (see :mod:`ocdec.cli`)."""
