"""Smoke test of the mixed-load benchmark: `bench_mix --quick` on SQLite, as `make bench` runs it
(a subprocess, the real `connector serve` and `connector worker`), must measure every part of the
mix with no error and receive every callback it expects. A broken benchmark fails here, not on
the day someone needs its numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
CARD_ORDER = {"authorize", "antifraud", "settle"}
ASYNC_ORDER = {"authorize-async"}


def test_quick_run_on_sqlite_measures_the_mix_without_errors(tmp_path: Path) -> None:
    results = tmp_path / "mix.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.load.bench_mix",
            "--quick",
            "--database",
            "sqlite",
            "--json",
            str(results),
        ],  # fmt: skip
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = f"{completed.stdout}\n{completed.stderr}"
    assert completed.returncode == 0, output
    document = json.loads(results.read_text())
    assert not document["failed"], document["failed"]
    runs = {(run["target"], run["mode"]): run for run in document["runs"]}
    assert set(runs) == {
        ("connector", "fixed"),
        ("connector", "saturation"),
        ("bare-starlette", "fixed"),
        ("bare-starlette", "saturation"),
    }, output
    for (target, mode), run in runs.items():
        assert run["requests"] > 0 and run["requests_per_s"] > 0, (target, mode)
        assert run["errors"] == 0, run["error_samples"]
        assert run["processes"], (target, mode)
        assert all(process["rss_end_mib"] > 0 for process in run["processes"]), run["processes"]
        if target != "connector":
            continue
        measured = {operation["operation"] for operation in run["operations"]}
        assert CARD_ORDER | ASYNC_ORDER <= measured, measured
        callbacks = run["callbacks"]
        assert callbacks["expected"] > 0, callbacks
        assert callbacks["received"] == callbacks["expected"], callbacks
        assert callbacks["missing"] == callbacks["duplicates"] == callbacks["not_approved"] == 0
        assert callbacks["lag_p50_ms"] > 0, callbacks
        roles = {process["role"] for process in run["processes"]}
        assert {"serve", "connector worker", "generator"} <= roles, roles
