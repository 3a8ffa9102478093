"""``python -m ocdec``: the ocdec command line."""

import sys

from ocdec.cli import main

sys.exit(main())
