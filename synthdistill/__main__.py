"""`python -m synthdistill` runs the command line."""

import sys

from synthdistill.cli import main

sys.exit(main())
