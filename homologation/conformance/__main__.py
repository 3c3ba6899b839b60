"""`python -m homologation.conformance JOB RESULT`: one group's run, in its own process."""

import sys
from pathlib import Path

from homologation.conformance.runner import run_job

if __name__ == "__main__":
    run_job(Path(sys.argv[1]), Path(sys.argv[2]))
