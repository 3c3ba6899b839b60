"""`python -m homologation run --url ...` (also installed as the `homologation` command)."""

import sys

from homologation.cli import main

sys.exit(main())
