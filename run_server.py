#!/usr/bin/env python3
"""Start the ChatFlow server: ``python run_server.py --help``."""

import sys

from chatflow.server.main import main

if __name__ == "__main__":
    sys.exit(main())
