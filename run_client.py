#!/usr/bin/env python3
"""Run the ChatFlow load test: ``python run_client.py --help``."""

import sys

from chatflow.client.main import main

if __name__ == "__main__":
    sys.exit(main())
