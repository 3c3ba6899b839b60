"""Running the groups: one Schemathesis engine run per group, in parallel processes."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import schemathesis
from schemathesis.engine import from_schema

from homologation.conformance.checks import _register_checks
from homologation.conformance.collect import Collector
from homologation.conformance.config import (
    DISABLED_CHECKS,
    DISABLED_FOR,
    SUITE,
    ConformanceOptions,
    Group,
    groups_for,
)
from homologation.conformance.fixtures import make_fixtures
from homologation.conformance.hooks import add_hooks
from homologation.conformance.links import LinkWalker
from homologation.conformance.specification import specification_scenario
from homologation.conformance.state import RunState, _registered
from homologation.report import Scenario
from homologation.vtex_specs import VtexSpecs


def run_conformance(options: ConformanceOptions, specs: VtexSpecs | None = None) -> list[Scenario]:
    """Every phase of `options` on every chosen protocol; the scenarios of each protocol in turn
    (fixtures, then the phases, then the comparison with VTEX's specification)."""
    specs = specs or VtexSpecs.load()
    groups = groups_for(options)
    # The admin API runs last, alone: fuzzing it blocks and loads whatever cards it finds
    # (Schemathesis reuses ids from answers), the protocols' fixture cards among them.
    protocols = [group for group in groups if group.protocol is not None]
    operators = [group for group in groups if group.protocol is None]
    if options.parallel and len(protocols) > 1:
        results = run_in_processes(protocols, options, specs)
    else:
        results = [scenario for group in protocols for scenario in run_group(group, options, specs)]
    for group in operators:
        results.extend(run_group(group, options, specs))
    return results


def run_in_processes(
    groups: list[Group], options: ConformanceOptions, specs: VtexSpecs
) -> list[Scenario]:
    """One `python -m homologation.conformance JOB RESULT` process per group (Schemathesis'
    generation is CPU-bound Python: threads would share one core). Not `multiprocessing`: its
    spawned workers import the caller's `__main__` again."""
    environment = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [package_root, environment.get("PYTHONPATH")])
    )
    results: list[Scenario] = []
    with tempfile.TemporaryDirectory(prefix="conformance-") as directory:
        running = []
        for group in groups:
            # The directory is the caller's alone (mkdtemp): the job holds the credentials.
            job, result, log = (
                Path(directory) / f"{group.name}.{kind}" for kind in ("job", "result", "log")
            )
            job.write_bytes(pickle.dumps((group, options, specs)))
            with log.open("wb") as output:
                process = subprocess.Popen(  # noqa: S603 - this interpreter, module, files
                    [sys.executable, "-m", "homologation.conformance", str(job), str(result)],
                    env=environment,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            running.append((group, result, log, process))
        try:
            for group, result, log, process in running:
                process.wait()
                if process.returncode == 0 and result.is_file():
                    # Written by the process started above from our own objects only.
                    results.extend(pickle.loads(result.read_bytes()))  # noqa: S301
                else:
                    tail = log.read_text("utf-8", "replace")[-3000:]
                    error = RuntimeError(f"exit status {process.returncode}\n{tail}")
                    results.append(_crashed(group, error))
        finally:  # interrupted: the runs stop too
            for _, _, _, process in running:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    return results


def run_job(job: Path, result: Path) -> None:
    group, options, specs = pickle.loads(job.read_bytes())  # noqa: S301 - written by our parent
    result.write_bytes(pickle.dumps(run_group(group, options, specs)))


def _crashed(group: Group, error: BaseException) -> Scenario:
    scenario = Scenario(SUITE, f"{group.name}: Schemathesis", "openapi.yaml")
    scenario.error = f"{type(error).__name__}: {error}"
    return scenario


def run_group(group: Group, options: ConformanceOptions, specs: VtexSpecs) -> list[Scenario]:
    """One engine run: the group's fixtures, its phases, its comparison with VTEX's spec."""
    started = time.monotonic()
    _register_checks()
    state = RunState(group, options, specs)
    scenarios: list[Scenario] = []
    try:
        fixtures = make_fixtures(state)
        if fixtures is not None:
            scenarios.append(fixtures)
        schema = load_schema(group, options)
        add_hooks(schema, state)
        collector = Collector(state, schema)
        with _registered(schema, state):
            for event in from_schema(schema).execute():
                collector.handle(event)
            if "stateful" in options.phases and group.has_links and collector.fatal is None:
                LinkWalker(state, collector).walk()
        scenarios.extend(collector.scenarios())
        if group.protocol is not None:
            scenarios.append(specification_scenario(state))
    except Exception as error:
        failed = _crashed(group, error)
        failed.error = f"{failed.error}\n{traceback.format_exc(limit=8)}"
        failed.seconds = time.monotonic() - started
        scenarios.append(failed)
    finally:
        state.close()
    return scenarios


def config_for(group: Group, options: ConformanceOptions) -> dict[str, Any]:
    """The Schemathesis configuration of a group's run."""
    secrets = {"key": options.app_key, "token": options.app_token, "admin": options.admin_token}
    auth: dict[str, Any] = {}
    for scheme, kind in group.credentials:
        value = secrets[kind] or ""
        auth[scheme] = {"bearer": value} if kind == "admin" else {"api_key": value}
    disabled = {**DISABLED_CHECKS, **DISABLED_FOR.get(group.name, {})}
    checks: dict[str, Any] = {name: {"enabled": False} for name in disabled}
    checks["max_response_time"] = options.max_response_time
    enabled = set(options.phases)
    seed = {} if options.seed is None else {"seed": options.seed}
    return {
        **seed,
        "base-url": options.base_url.rstrip("/") + group.mount,
        "request-timeout": options.request_timeout,
        "workers": 1,
        "continue-on-failure": True,
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        "generation": {
            "max-examples": options.max_examples,
            # Without a seed, every run generates the same requests (Hypothesis derandomized).
            "deterministic": options.seed is None,
            "database": "none",
            "no-shrink": True,
        },
        "checks": checks,
        "auth": {"openapi": auth},
        "phases": {
            "examples": {"enabled": "examples" in enabled},
            "coverage": {"enabled": "coverage" in enabled},
            "fuzzing": {"enabled": "fuzzing" in enabled},
            "stateful": {
                "enabled": "stateful" in enabled and group.has_links,
                "generation": {"mode": "positive"},  # a link is followed from a 2xx
                # The document's links only: the flows VTEX's parties follow.
                "inference": {"algorithms": []},
            },
        },
        "warnings": False,
    }


def load_schema(group: Group, options: ConformanceOptions) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(config_for(group, options))
    schema = schemathesis.openapi.from_path(options.openapi, config=config).include(tag=group.tag)
    if group.excluded is not None:  # (a second `include` would add operations, not filter)
        schema = schema.exclude(path_regex=group.excluded)
    return schema
