"""`python -m RaGANLib ...` is the same as `ragan ...`."""

import sys

from RaGANLib.cli import main

sys.exit(main())
