"""deploy/: the image, the Compose file and the Kubernetes manifests, without Docker or a cluster.

Static: the Dockerfile (dockerfile-parse), compose.yaml against the Compose Specification's JSON
schema (tests/deploy/compose-spec.json), every manifest against Kubernetes' OpenAPI schemas
(kubernetes-validate, strict) raw and as `kubectl kustomize` renders them, and the rules that tie
them together (tests/deploy/checks.py); each rule is also shown to catch a broken copy.

Dynamic (`slow`): the builder stage carried out here (tests/deploy/image.py), then the commands
the containers run, from that venv, with the environment compose.yaml gives them, on a fresh
PostgreSQL database: migrate, serve, worker, the HEALTHCHECKs, SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import kubernetes_validate  # type: ignore[import-untyped]
import psutil
import pytest
import yaml
from cryptography.fernet import Fernet
from kubernetes_validate.utils import latest_version  # type: ignore[import-untyped]
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import _postgres_database
from tests.deploy import checks
from tests.deploy.image import (
    Image,
    Process,
    build,
    free_port,
    wait_for_client,
    wait_for_database_connection,
    wait_until_ready,
)
from tests.payloads import create_payment

KUBERNETES_VERSIONS = ["1.30.0", latest_version()]


def dockerfile() -> checks.Dockerfile:
    return checks.parse_dockerfile(checks.DOCKERFILE.read_text())


def image_uid_and_port() -> tuple[int, int]:
    final = dockerfile().final
    return int(checks.final_user(final)[0]), int(final.values("EXPOSE")[-1].split("/")[0])


def compose() -> dict[str, Any]:
    return checks.load_compose(checks.COMPOSE_FILE.read_text())


def kustomization() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((checks.K8S / "kustomization.yaml").read_text())
    return found


def manifests() -> list[dict[str, Any]]:
    return checks.load_manifests(checks.K8S / name for name in kustomization()["resources"])


def required_variables() -> set[str]:
    """The variables compose.yaml requires (`${VAR:?message}`), from its values, not comments."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, str):
            found.update(re.findall(r"\$\{(\w+):\?", node))
        elif isinstance(node, list | dict):
            for item in node.values() if isinstance(node, dict) else node:
                walk(item)

    walk(compose())
    return found


def operator_values() -> dict[str, str]:
    """What an operator writes in deploy/.env, as test values."""
    values = {name: secrets.token_hex(16) for name in required_variables()}
    values["CONNECTOR_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    values["CONNECTOR_PUBLIC_BASE_URL"] = "https://connector.example.com"
    return values


def _expect(problems: list[str], fragment: str) -> None:
    assert any(fragment in problem for problem in problems), (fragment, problems)


# ============================================================================= Dockerfile


def test_dockerfile_follows_the_rules() -> None:
    assert checks.dockerfile_problems(checks.DOCKERFILE.read_text()) == []
    parsed = dockerfile()
    assert [stage.name for stage in parsed.stages] == ["builder", "runtime"]
    assert checks.venv_path(parsed) == "/opt/venv"


def _replace(old: str, new: str) -> Callable[[str], str]:
    def mutate(text: str) -> str:
        assert old in text, f"stale mutation: {old!r} is not in the Dockerfile"
        return text.replace(old, new)

    return mutate


def _single_stage(text: str) -> str:
    return "FROM python:3.11-slim\n" + text[text.index("ENV PATH=") :]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_single_stage, "needs a builder and a runtime stage"),
        (_replace("USER 10001:10001", "USER connector"), "numeric non-root uid"),
        (_replace("USER 10001:10001", "USER 0"), "numeric non-root uid"),
        (_replace("USER 10001:10001\n", ""), "numeric non-root uid"),
        (_replace('ENTRYPOINT ["connector"]', "ENTRYPOINT connector"), "ENTRYPOINT"),
        (_replace('"--host", "0.0.0.0"', '"--host", "127.0.0.1"'), "--host 0.0.0.0"),
        (_replace("EXPOSE 8000", "EXPOSE 8080"), "is not EXPOSEd"),
        (_replace("ENTRYPOINT", 'ENV CONNECTOR_ADMIN_TOKEN="s3cr3t"\nENTRYPOINT'), "baked"),
        (_replace("ARG PYTHON_IMAGE", "ARG WEBHOOK_SECRET\nARG PYTHON_IMAGE"), "baked"),
        (_replace("/opt/venv /opt/venv", "/src /src"), "copies more than the builder's venv"),
        (_replace("ENV PATH=/opt/venv/bin:$PATH", "ENV PATH=$PATH"), "not on the runtime PATH"),
        (_replace("-c constraints.txt ", ""), "constraints.txt"),
        (_replace("vtex_connector-*.whl", "'.[homologation]'"), "extras"),
        (_replace("WORKDIR /app", "RUN pip install gunicorn\nWORKDIR /app"), "installs"),
        (_replace("8000/health/live", "8000/health/ready"), "/health/live"),
        (_replace("FROM ${PYTHON_IMAGE} AS runtime", "FROM python:3.12-slim AS runtime"), "3.12"),
    ],
)
def test_dockerfile_rules_catch_mistakes(mutate: Callable[[str], str], expected: str) -> None:
    _expect(checks.dockerfile_problems(mutate(checks.DOCKERFILE.read_text())), expected)


def test_dockerignore_sends_only_what_the_builder_copies() -> None:
    patterns = checks.dockerignore_patterns(checks.DOCKERIGNORE.read_text())
    builder = dockerfile().stage("builder")
    sources = [word for value in builder.values("COPY") for word in value.split()[:-1]]
    assert "connector/" in sources and "openapi.yaml" in sources
    for source in sources:
        assert not checks.dockerignored(patterns, source.rstrip("/")), source
    for kept in ("connector/app.py", "connector/db/migrations/env.py", "protocol/payments.py"):
        assert not checks.dockerignored(patterns, kept), kept
    for left_out in (
        ".env",
        "deploy/.env",
        ".venv/bin/python",
        ".git/config",
        "connector.db",
        "tests/conftest.py",
        "connector/__pycache__/app.cpython-311.pyc",
        "build/homologation.xml",
    ):
        assert checks.dockerignored(patterns, left_out), left_out
    # The matcher itself can say "kept": without the ignore file everything is sent.
    assert not checks.dockerignored([], ".env")


# ============================================================================= Compose


def test_compose_file_matches_the_compose_specification() -> None:
    assert checks.compose_schema_errors(compose()) == []
    # ... and so does what Compose runs once deploy/.env is interpolated.
    assert checks.compose_schema_errors(checks.interpolate_tree(compose(), operator_values())) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (["services", "web", "depends_on", "migrate", "condition"], "done", "not valid under any"),
        (["services", "web", "stop_grace_period"], 30, "is not of type 'string'"),
        (["services", "worker", "commands"], ["worker"], "'commands' does not match"),
    ],
)
def test_compose_schema_catches_mistakes(path: list[str], value: Any, expected: str) -> None:
    data = compose()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    _expect(checks.compose_schema_errors(data), expected)


def test_compose_follows_the_rules() -> None:
    assert checks.compose_problems(compose()) == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value

    return mutate


WEB_ENV = "services.web.environment"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_set("services.web.depends_on.migrate.condition", "service_started"), "web must wait"),
        (
            _set("services.worker.depends_on", {"postgres": {"condition": "service_healthy"}}),
            "wait",
        ),
        (_set("services.migrate.depends_on.postgres.condition", "service_started"), "healthy"),
        (_set("services.migrate.command", ["serve"]), "migrate runs"),
        (_set("services.migrate.restart", "unless-stopped"), "after completing"),
        (_set("services.worker.command", ["serve"]), "worker runs"),
        (_set("services.web.command", ["worker"]), "not serve"),
        (_set("services.web.stop_grace_period", "20s"), "is not above 20"),
        (_set("services.worker.stop_grace_period", None), "is not above 20"),
        (_set("services.web.healthcheck.test", ["CMD", "true"]), "/health/ready"),
        (_set("services.worker.healthcheck", None), "must be disabled"),
        (_set("services.postgres.healthcheck", None), "pg_isready"),
        (_set("services.web.ports", ["8000:8000"]), "beyond the loopback"),
        (_set("services.web.image", "other:latest"), "another image"),
        (_set(f"{WEB_ENV}.CONNECTOR_RUN_BACKGROUND_WORKERS", "true"), "BACKGROUND_WORKERS"),
        (_set(f"{WEB_ENV}.CONNECTOR_ADMIN_TOKEN", "hunter2"), "CONNECTOR_ADMIN_TOKEN must be"),
        (_set(f"{WEB_ENV}.CONNECTOR_VTEX_APP_TOKEN", "${TOKEN:-hunter2}"), "required"),
        (_set(f"{WEB_ENV}.CONNECTOR_ACQUIRER_API_KEY", "${KEY}"), "ACQUIRER_API_KEY must be"),
        (
            _set(f"{WEB_ENV}.CONNECTOR_DATABASE_URL", "postgresql+asyncpg://c:pw@postgres/c"),
            "literal password",
        ),
        (
            _set(f"{WEB_ENV}.CONNECTOR_DATABASE_URL", "postgresql+asyncpg://c:${PW:-x}@db/c"),
            "not a required",
        ),
        (_set("services.postgres.environment.POSTGRES_PASSWORD", "postgres"), "POSTGRES_PASSWORD"),
    ],
)
def test_compose_rules_catch_mistakes(
    mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    data = copy.deepcopy(compose())
    mutate(data)
    _expect(checks.compose_problems(data), expected)


def test_compose_interpolation_is_composes() -> None:
    assert checks.interpolate("a${X:-${Y:-z}}b$$c${Z:+q}$Z", {"Z": "1"}) == "azb$cq1"
    assert checks.interpolate("${X-d}${X:-e}", {"X": ""}) == "e"
    with pytest.raises(checks.MissingVariable, match="X: say so"):
        checks.interpolate("${X:?say so}", {"X": ""})


def test_compose_refuses_to_start_without_each_secret() -> None:
    data = compose()
    values = operator_values()
    assert {
        "POSTGRES_PASSWORD",
        "CONNECTOR_ENCRYPTION_KEYS",
        "CONNECTOR_ADMIN_TOKEN",
        "CONNECTOR_VTEX_APP_TOKEN",
        "CONNECTOR_BLIND_INDEX_KEY",
        "CONNECTOR_WEBHOOK_SECRET",
    } <= required_variables()
    for name in required_variables():
        with pytest.raises(checks.MissingVariable, match=name):
            checks.interpolate_tree(data, {k: v for k, v in values.items() if k != name})
    checks.interpolate_tree(data, values)


def test_env_example_holds_no_secret_and_env_files_are_ignored_by_git() -> None:
    example = (checks.DEPLOY / ".env.example").read_text()
    assert checks.env_example_problems(example) == []
    assert checks.env_example_problems("CONNECTOR_ADMIN_TOKEN=abc\n") != []
    assert required_variables() <= set(re.findall(r"^#?\s*(\w+)=", example, re.MULTILINE))
    assert checks.COMPOSE_FILE.parent.joinpath(".gitignore").exists()
    for name, ignored in (("deploy/.env", True), ("deploy/connector.env", True)):
        found = subprocess.run(["git", "check-ignore", "-q", name], cwd=checks.REPO, check=False)
        assert (found.returncode == 0) is ignored, name
    kept = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/.env.example"], cwd=checks.REPO, check=False
    )
    assert kept.returncode == 1


# ============================================================================= Kubernetes


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_match_the_kubernetes_schemas(version: str) -> None:
    documents = manifests()
    assert {doc["kind"] for doc in documents} >= {
        "ConfigMap",
        "Deployment",
        "Job",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Ingress",
    }
    for doc in documents:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda web: web["spec"]["template"]["spec"].update(terminationGracePeriod=45), "Addit"),
        (lambda web: web["spec"].update(replicas="two"), "is not of type"),
        (
            lambda web: web["spec"]["template"]["spec"]["containers"][0].pop("name"),
            "'name' is a required property",
        ),
        (lambda web: web["spec"].pop("selector"), "'selector' is a required property"),
    ],
)
def test_schema_validation_catches_mistakes(
    mutate: Callable[[dict[str, Any]], Any], expected: str
) -> None:
    web = copy.deepcopy(checks.load_manifests([checks.K8S / "deployment-web.yaml"])[0])
    kubernetes_validate.validate(web, KUBERNETES_VERSIONS[-1], strict=True)
    mutate(web)
    with pytest.raises(kubernetes_validate.ValidationError, match=re.escape(expected)):
        kubernetes_validate.validate(web, KUBERNETES_VERSIONS[-1], strict=True)


def test_manifests_follow_the_rules() -> None:
    uid, port = image_uid_and_port()
    assert checks.k8s_problems(manifests(), uid, port) == []


def _doc(documents: list[dict[str, Any]], kind: str, component: str | None = None) -> Any:
    for doc in documents:
        labels = doc["metadata"].get("labels") or {}
        if doc["kind"] == kind and component in (None, labels.get("app.kubernetes.io/component")):
            return doc
    raise KeyError(kind)


def _container(documents: list[dict[str, Any]], kind: str, component: str) -> Any:
    return _doc(documents, kind, component)["spec"]["template"]["spec"]["containers"][0]


def _web(documents: list[dict[str, Any]]) -> Any:
    return _container(documents, "Deployment", "web")


def _web_pod(documents: list[dict[str, Any]]) -> Any:
    return _doc(documents, "Deployment", "web")["spec"]["template"]["spec"]


def _add_env(name: str, value: str) -> Callable[[list[dict[str, Any]]], None]:
    return lambda docs: _web(docs)["env"].append({"name": name, "value": value})


K8S_MUTATIONS: list[tuple[str, Callable[[list[dict[str, Any]]], Any], str]] = [
    (
        "service selects the worker",
        lambda d: _doc(d, "Service")["spec"]["selector"].update(
            {"app.kubernetes.io/component": "worker"}
        ),
        "no Service selects the web pods",
    ),
    (
        "service port to nowhere",
        lambda d: _doc(d, "Service")["spec"]["ports"][0].update(targetPort="metrics"),
        "no port 80",
    ),
    (
        "service exposed as LoadBalancer",
        lambda d: _doc(d, "Service")["spec"].update(type="LoadBalancer"),
        "ClusterIP",
    ),
    (
        "hpa targets another deployment",
        lambda d: _doc(d, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"].update(name="x"),
        "the HPA scales Deployment/x",
    ),
    (
        "hpa min 1",
        lambda d: _doc(d, "HorizontalPodAutoscaler")["spec"].update(minReplicas=1),
        "below 2",
    ),
    (
        "pdb selects nothing",
        lambda d: _doc(d, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].update(
            {"app.kubernetes.io/component": "api"}
        ),
        "no PodDisruptionBudget selects",
    ),
    (
        "pdb blocks drains",
        lambda d: (
            _doc(d, "PodDisruptionBudget")["spec"].update(minAvailable=2, maxUnavailable=None)
            or _doc(d, "PodDisruptionBudget")["spec"].pop("maxUnavailable")
        ),
        "blocks drains",
    ),
    (
        "readiness on live",
        lambda d: _web(d)["readinessProbe"]["httpGet"].update(path="/health/live"),
        "readinessProbe must GET /health/ready",
    ),
    (
        "liveness on the database",
        lambda d: _web(d)["livenessProbe"]["httpGet"].update(path="/health/ready"),
        "livenessProbe must GET /health/live",
    ),
    (
        "probe on another port",
        lambda d: _web(d)["livenessProbe"]["httpGet"].update(port=9000),
        "is not container port",
    ),
    ("serve on another port", lambda d: _web(d).update(args=["serve", "--port", "9000"]), "serve"),
    ("no preStop", lambda d: _web(d).pop("lifecycle"), "preStop"),
    (
        "grace too short",
        lambda d: _web_pod(d).update(terminationGracePeriodSeconds=30),
        "terminationGracePeriodSeconds 30",
    ),
    (
        "replicas 1",
        lambda d: _doc(d, "Deployment", "web")["spec"].update(replicas=1),
        "replicas 1 < 2",
    ),
    (
        "another uid",
        lambda d: _web_pod(d)["securityContext"].update(runAsUser=1000),
        "!= image uid",
    ),
    (
        "root allowed",
        lambda d: _web_pod(d)["securityContext"].pop("runAsNonRoot"),
        "runAsNonRoot",
    ),
    (
        "writable root",
        lambda d: _web(d)["securityContext"].update(readOnlyRootFilesystem=False),
        "readOnlyRootFilesystem",
    ),
    (
        "privilege escalation",
        lambda d: _container(d, "Job", "migrate")["securityContext"].pop(
            "allowPrivilegeEscalation"
        ),
        "allowPrivilegeEscalation",
    ),
    (
        "capabilities kept",
        lambda d: _container(d, "Deployment", "worker")["securityContext"].pop("capabilities"),
        "drop ALL",
    ),
    ("no /tmp", lambda d: _web(d).pop("volumeMounts"), "no emptyDir at /tmp"),
    ("no limits", lambda d: _web(d)["resources"].pop("limits"), "requests and limits"),
    ("literal token", _add_env("CONNECTOR_ADMIN_TOKEN", "hunter2"), "not from a secretKeyRef"),
    ("literal db url", _add_env("CONNECTOR_DATABASE_URL", "postgresql://a:b@c/d"), "secretKeyRef"),
    (
        "secret from elsewhere",
        lambda d: _web(d)["env"][1]["valueFrom"]["secretKeyRef"].update(name="other"),
        "from Secret other",
    ),
    (
        "secret in the configmap",
        lambda d: _doc(d, "ConfigMap")["data"].update(CONNECTOR_WEBHOOK_SECRET="x"),
        "ConfigMap connector-config holds",
    ),
    (
        "configmap missing",
        lambda d: d.remove(_doc(d, "ConfigMap")),
        "which is not defined",
    ),
    (
        "secret committed",
        lambda d: d.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "connector-secrets"},
                "stringData": {"CONNECTOR_ADMIN_TOKEN": "x"},
            }
        ),
        "with data is in the repository",
    ),
    ("job serves", lambda d: _container(d, "Job", "migrate").update(args=["serve"]), "Job runs"),
    ("job forever", lambda d: _doc(d, "Job")["spec"].pop("backoffLimit"), "backoffLimit"),
    (
        "job needs the configmap",
        lambda d: _container(d, "Job", "migrate").update(
            envFrom=[{"configMapRef": {"name": "connector-config"}}]
        ),
        "must not need the ConfigMap",
    ),
    (
        "worker serves",
        lambda d: _container(d, "Deployment", "worker").update(args=["serve"]),
        "worker runs",
    ),
    (
        "worker http probe",
        lambda d: _container(d, "Deployment", "worker").update(
            livenessProbe={"httpGet": {"path": "/health/live", "port": 8000}}
        ),
        "does not serve",
    ),
    (
        "web runs the workers",
        lambda d: _web(d)["env"][0].update(value="true"),
        "CONNECTOR_RUN_BACKGROUND_WORKERS=false",
    ),
    (
        "worker on another image",
        lambda d: _container(d, "Deployment", "worker").update(image="x:1"),
        "runs x:1",
    ),
    (
        "invented ingress annotation",
        lambda d: _doc(d, "Ingress")["metadata"]["annotations"].update(
            {"nginx.ingress.kubernetes.io/ssl-protocols": "TLSv1.2 TLSv1.3"}
        ),
        "ssl-protocols",
    ),
    ("ingress without tls", lambda d: _doc(d, "Ingress")["spec"].pop("tls"), "no TLS secret"),
    (
        "ingress to another port",
        lambda d: _doc(d, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"][
            "port"
        ].update(name="https"),
        "sends to port https",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(m, e, id=name) for name, m, e in K8S_MUTATIONS],
)
def test_manifest_rules_catch_mistakes(
    mutate: Callable[[list[dict[str, Any]]], Any], expected: str
) -> None:
    uid, port = image_uid_and_port()
    documents = copy.deepcopy(manifests())
    mutate(documents)
    _expect(checks.k8s_problems(documents, uid, port), expected)


def test_kustomization_lists_every_manifest(tmp_path: Path) -> None:
    assert checks.kustomization_problems(checks.K8S, kustomization()) == []
    copied = tmp_path / "k8s"
    shutil.copytree(checks.K8S, copied)
    (copied / "networkpolicy.yaml").write_text("kind: NetworkPolicy\n")
    listed = kustomization()
    listed["resources"].remove("pdb.yaml")
    problems = checks.kustomization_problems(copied, listed)
    assert problems == [
        "networkpolicy.yaml is not in kustomization.yaml",
        "pdb.yaml is not in kustomization.yaml",
    ]


def test_kustomize_renders_valid_manifests() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: `kubectl kustomize` cannot render deploy/k8s")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(checks.K8S)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    documents = [doc for doc in yaml.safe_load_all(rendered) if doc]
    assert len(documents) == len(manifests())
    for version in KUBERNETES_VERSIONS:
        for doc in documents:
            kubernetes_validate.validate(doc, version, strict=True)
    uid, port = image_uid_and_port()
    assert checks.k8s_problems(documents, uid, port) == []
    namespace = kustomization()["namespace"]
    for doc in documents:
        if doc["kind"] in checks.NAMESPACED_KINDS:
            assert doc["metadata"].get("namespace") == namespace, doc["metadata"]["name"]
    tag = kustomization()["images"][0]["newTag"]
    images = {
        container["image"]
        for doc in documents
        if doc["kind"] in ("Deployment", "Job")
        for container in doc["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"{kustomization()['images'][0]['name']}:{tag}"}


# ============================================================================= the commands

slow = pytest.mark.slow


@pytest.fixture(scope="session")
def image() -> Iterator[Image]:
    """deploy/Dockerfile's builder stage carried out under a temporary root (about 30 s with a
    warm pip cache); the runtime commands then run from its venv."""
    parsed = dockerfile()
    base = parsed.final.base
    if not base.startswith(f"python:{sys.version_info.major}.{sys.version_info.minor}-"):
        pytest.skip(f"the image runs {base}; this interpreter is {sys.version.split()[0]}")
    root = Path(tempfile.mkdtemp(prefix="connector-image-"))
    try:
        yield build(
            parsed,
            context=checks.REPO,
            ignore=checks.dockerignore_patterns(checks.DOCKERIGNORE.read_text()),
            root=root,
            # This machine's package index settings; the image uses the public index.
            cache_env={k: v for k, v in os.environ.items() if k.startswith("PIP_")},
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def service_environment(service: str, values: dict[str, str], database_url: str) -> dict[str, str]:
    """A Compose service's environment with deploy/.env's values; its database is the test's."""
    data = checks.interpolate_tree(compose(), values)
    environment = checks.service_environment(data["services"][service])
    declared = make_url(environment["CONNECTOR_DATABASE_URL"])
    assert declared.drivername == make_url(database_url).drivername
    assert (declared.host, declared.port, declared.database) == ("postgres", 5432, "connector")
    return {**environment, "CONNECTOR_DATABASE_URL": database_url}


def compose_command(service: str, port: int | None = None) -> list[str]:
    command = list(compose()["services"][service]["command"])
    if port is not None:
        command[command.index("--port") + 1] = str(port)
    return command


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database, dropped afterwards (skips without a server, fails under CI)."""
    databases = cast(Generator[str, None, None], _postgres_database())
    try:
        yield next(databases)
    finally:
        databases.close()


@slow
def test_image_holds_the_pinned_runtime_dependencies_and_openapi(image: Image) -> None:
    python = str(image.root / "opt" / "venv" / "bin" / "python")
    freeze = subprocess.run(
        [python, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True
    ).stdout

    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    pinned = {}
    for line in (checks.REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[normal(name)] = version.strip()
    installed = {}
    for line in freeze.splitlines():
        name, _, version = line.partition("==")
        if "@" in line:
            name = line.split("@")[0].strip()
        installed[normal(name)] = version
    assert "vtex-connector" in installed
    for name, version in installed.items():
        if name in ("vtex-connector", "pip", "setuptools"):
            continue
        assert pinned.get(name) == version, f"{name}=={version} is not pinned in constraints.txt"
    for tool in ("pytest", "schemathesis", "ruff", "mypy", "hatchling"):
        assert tool not in installed, f"{tool} is in the runtime image"
    check = subprocess.run(
        [python, "-m", "pip", "check"], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout
    where = image.execute(
        [python, "-c", "import connector.app as a, pathlib; print(pathlib.Path(a.__file__).parent)"]
    )
    package = Path(where.stdout.strip())
    assert package.is_relative_to(image.root / "opt" / "venv"), where
    assert (package / "openapi.yaml").exists()
    assert (package / "db" / "migrations").is_dir()


@slow
def test_serve_refuses_to_start_on_an_unmigrated_database(image: Image) -> None:
    """The schema is checked at start-up: `serve` exits (uvicorn's startup-failure status 3)
    rather than answer /health/ready with 503. Compose holds web back until migrate completed;
    on Kubernetes a pod started before the Job finishes restarts until it has."""
    with fresh_database() as database_url:
        environment = service_environment("web", operator_values(), database_url)
        done = image.run(compose_command("web", free_port()), environment, timeout=60)
        assert done.returncode == 3, done.stderr
        assert "run `connector migrate`" in done.stderr
        assert "Application startup failed" in done.stderr


@dataclass
class Deployment:
    image: Image
    database_url: str
    migrations: list[subprocess.CompletedProcess[str]]
    web: Process
    worker: Process
    base_url: str
    port: int
    environment: dict[str, str]


@pytest.fixture(scope="module")
def deployment(image: Image) -> Iterator[Deployment]:
    """migrate (twice: every rollout runs it), then web and worker, as compose.yaml runs them."""
    with fresh_database() as database_url:
        values = operator_values()
        migrate_env = service_environment("migrate", values, database_url)
        migrations = [image.run(compose_command("migrate"), migrate_env) for _ in range(2)]
        assert migrations[0].returncode == 0, migrations[0].stderr
        port = free_port()
        web_env = {
            **service_environment("web", values, database_url),
            # Payments take 3 s, so that one is in flight when SIGTERM arrives.
            "CONNECTOR_SANDBOX_LATENCY_MS": "3000",
        }
        web = image.start("web", compose_command("web", port), web_env)
        worker = image.start(
            "worker", compose_command("worker"), service_environment("worker", values, database_url)
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_until_ready(base_url, web)
            wait_for_database_connection(worker, make_url(database_url).port or 5432)
            yield Deployment(image, database_url, migrations, web, worker, base_url, port, web_env)
        finally:
            for process in (web, worker):
                process.kill()


@slow
def test_migrate_is_a_separate_repeatable_step(deployment: Deployment) -> None:
    for done in deployment.migrations:
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("database at head:")


@slow
def test_web_serves_health_and_the_shipped_openapi(deployment: Deployment) -> None:
    live = httpx.get(f"{deployment.base_url}/health/live", timeout=5)
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    ready = httpx.get(f"{deployment.base_url}/health/ready", timeout=5)
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
    document = httpx.get(f"{deployment.base_url}/openapi.json", timeout=5)
    assert document.status_code == 200
    # The repository's openapi.yaml, as the wheel ships it (force-included).
    assert document.json() == yaml.safe_load((checks.REPO / "openapi.yaml").read_text())
    # Both processes run as the image's USER, in its root-owned, empty WORKDIR, and fit in the
    # memory the manifests request for them.
    requests = {
        name: _container(manifests(), "Deployment", name)["resources"]["requests"]["memory"]
        for name in ("web", "worker")
    }
    for process in (deployment.web, deployment.worker):
        rss = psutil.Process(process.pid).memory_info().rss
        assert rss < _bytes(requests[process.name]), (process.name, rss)
        expected = deployment.image.uid if deployment.image.drop_privileges else os.geteuid()
        assert psutil.Process(process.pid).uids().real == expected
        assert psutil.Process(process.pid).cwd() == str(deployment.image.workdir)


def _bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return int(quantity[:-2]) * units[quantity[-2:]]


def _on_port(argv: list[str], port: int) -> list[str]:
    return [word.replace("127.0.0.1:8000/", f"127.0.0.1:{port}/") for word in argv]


@slow
def test_the_healthchecks_pass_against_the_running_service(deployment: Deployment) -> None:
    image = deployment.image
    docker = _on_port(image.healthcheck, deployment.port)
    assert docker != image.healthcheck  # the HEALTHCHECK asks the served port (8000)
    web_test = compose()["services"]["web"]["healthcheck"]["test"]
    assert web_test[0] == "CMD"
    for original in (image.healthcheck, web_test[1:]):
        done = image.execute(_on_port(original, deployment.port))
        assert done.returncode == 0, done.stderr
        nobody = image.execute(_on_port(original, free_port()))
        assert nobody.returncode != 0


async def _set_revision(database_url: str, revision: str | None) -> str | None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            before = await connection.scalar(text("SELECT version_num FROM alembic_version"))
            if revision is not None:
                await connection.execute(
                    text("UPDATE alembic_version SET version_num = :r"), {"r": revision}
                )
            return str(before)
    finally:
        await engine.dispose()


@slow
def test_ready_follows_the_schema_during_a_rollout(deployment: Deployment) -> None:
    """A newer release migrated the database: the running (older) pods stay ready, as the
    rollout needs them to. A schema behind the code is 503 (run `connector migrate`), though
    the process stays alive."""
    head = asyncio.run(_set_revision(deployment.database_url, "9999_from_a_newer_release"))
    try:
        assert httpx.get(f"{deployment.base_url}/health/ready", timeout=5).status_code == 200
        asyncio.run(_set_revision(deployment.database_url, "0001"))
        ready = httpx.get(f"{deployment.base_url}/health/ready", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        assert "run `connector migrate`" in ready.json()["reason"]
        assert httpx.get(f"{deployment.base_url}/health/live", timeout=5).status_code == 200
        web_test = compose()["services"]["web"]["healthcheck"]["test"][1:]
        failing = deployment.image.execute(_on_port(web_test, deployment.port))
        assert failing.returncode != 0
        assert (
            deployment.image.execute(
                _on_port(deployment.image.healthcheck, deployment.port)
            ).returncode
            == 0
        )  # the image's HEALTHCHECK (live) still passes: no restart
    finally:
        asyncio.run(_set_revision(deployment.database_url, head))
    assert httpx.get(f"{deployment.base_url}/health/ready", timeout=5).status_code == 200


@slow
def test_sigterm_finishes_in_flight_requests_and_exits_in_the_grace_period(
    deployment: Deployment,
) -> None:
    """Run last: it stops the deployment. `docker stop` and the kubelet send SIGTERM, then
    SIGKILL after stop_grace_period / terminationGracePeriodSeconds."""
    image = deployment.image
    issued = image.run(["merchants", "add", "acme"], deployment.environment)
    assert issued.returncode == 0, issued.stderr
    merchant = json.loads(issued.stdout)
    headers = {"X-VTEX-API-AppKey": merchant["appKey"], "X-VTEX-API-AppToken": merchant["appToken"]}
    services = compose()["services"]
    web_grace = checks.parse_duration(services["web"]["stop_grace_period"])
    worker_grace = checks.parse_duration(services["worker"]["stop_grace_period"])

    with ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(
            httpx.post,
            f"{deployment.base_url}/payment-provider/payments",
            # A sync approval: nothing is called back (the URL must still be VTEX's).
            json=create_payment(
                callbackUrl="https://mystore.vtexpayments.com.br/payment-provider/callback"
            ),
            headers=headers,
            timeout=30,
        )
        wait_for_client(deployment.web, deployment.port)
        time.sleep(1.0)  # the request is inside the 3 s sandbox latency
        assert not in_flight.done(), in_flight.result().text
        web_code, web_seconds = deployment.web.terminate(timeout=web_grace)
        response = in_flight.result(timeout=5)
    worker_code, worker_seconds = deployment.worker.terminate(timeout=worker_grace)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "approved"
    log = deployment.web.output()
    assert "Waiting for application shutdown." in log and "Application shutdown complete." in log
    assert "Finished server process" in log
    # A graceful stop is a success: `serve` swallows the SIGTERM uvicorn raises again once it
    # has shut down (without that, the container would end "killed by SIGTERM", status 143).
    assert web_code == 0, (web_code, log)
    assert web_seconds < web_grace
    # The worker stops its loops and returns 0.
    assert worker_code == 0, (worker_code, deployment.worker.output())
    assert worker_seconds < worker_grace
