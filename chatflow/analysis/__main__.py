"""``python -m chatflow.analysis FILE.csv [FILE2.csv ...]``."""

import sys

from chatflow.analysis.cli import main

sys.exit(main())
