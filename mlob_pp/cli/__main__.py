"""``python -m mlob_pp.cli``: the ``mlob-pp`` command line."""

import sys

from mlob_pp.cli import main

sys.exit(main())
