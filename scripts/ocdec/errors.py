"""User-facing errors: the command line prints these as one line and exits non-zero."""


class OcdecError(Exception):
    """A mistake in the user's input (file, row, column, option) or an unrecoverable remote error.

    The message must be one line that names what is wrong and where (file, row or column).
    """
