"""``python -m chatflow.wan``."""

import sys

from chatflow.wan.cli import main

sys.exit(main())
