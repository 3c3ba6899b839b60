"""`python -m homologation run --url ...` (also installed as the `homologation` command)."""

import sys

from homologation.cli import main

if __name__ == "__main__":
    sys.exit(main())
