"""`make demo` works: every scenario it plays against the fakes passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_passes_every_scenario() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "homologation.demo", "--once", "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "4 of 4 scenarios passed." in finished.stdout
    assert "FAILED" not in finished.stdout
    # The demo shows tokens, never the card number it vaulted.
    assert "4444333322221111" not in finished.stdout + finished.stderr
