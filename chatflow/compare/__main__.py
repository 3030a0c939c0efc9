import sys

from chatflow.compare.cli import main

sys.exit(main())
