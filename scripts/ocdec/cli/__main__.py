"""``python -m ocdec.cli``: the ocdec command line."""

import sys

from ocdec.cli import main

sys.exit(main())
