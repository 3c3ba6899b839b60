"""What deploy/ must satisfy, as functions that return the problems they find.

The tests run them on the shipped files and on broken copies of them: every rule can fail.
"""

from __future__ import annotations

import io
import json
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import yaml
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
COMPOSE_FILE = DEPLOY / "compose.yaml"
COMPOSE_SCHEMA = Path(__file__).resolve().parent / "compose-spec.json"

# Names of settings that hold credentials: they come from secrets, never from a literal.
SENSITIVE = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|DATABASE_URL")
SECRET_NAME = "connector-secrets"


def graceful_shutdown_seconds() -> int:
    """uvicorn's timeout_graceful_shutdown, as `connector serve` sets it."""
    source = (REPO / "connector" / "cli.py").read_text()
    found = re.search(r"timeout_graceful_shutdown=(\d+)", source)
    assert found, "connector/cli.py no longer sets timeout_graceful_shutdown"
    return int(found.group(1))


def is_sensitive(name: str) -> bool:
    return bool(SENSITIVE.search(name.upper()))


def parse_duration(value: str | int | float) -> float:
    """A Compose duration ("30s", "1m30s", "500ms") in seconds."""
    if isinstance(value, int | float):
        return float(value)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"not a duration: {value!r}")
    return sum(float(number) * units[unit] for number, unit in parts)


# ============================================================================= Dockerfile


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [value for name, value in self.instructions if name == instruction]


@dataclass
class Dockerfile:
    stages: list[Stage]
    preamble: Stage  # the ARGs before the first FROM

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


def parse_dockerfile(text: str) -> Dockerfile:
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    bases = iter(parser.parent_images)  # FROM lines with build arguments resolved
    stages: list[Stage] = []
    preamble = Stage(base="", name=None)
    for item in parser.structure:
        instruction, value = item["instruction"], " ".join(item["value"].split())
        if instruction == "FROM":
            words = value.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=next(bases), name=name))
        elif instruction != "COMMENT":
            (stages[-1] if stages else preamble).instructions.append((instruction, value))
    return Dockerfile(stages, preamble)


def exec_form(value: str) -> list[str] | None:
    """The JSON array of an exec-form ENTRYPOINT/CMD/HEALTHCHECK CMD, None for shell form."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, list) else None


def stage_env(stage: Stage) -> dict[str, str]:
    """ENV of one stage, unexpanded (`PATH=/opt/venv/bin:$PATH` stays as written)."""
    env: dict[str, str] = {}
    for value in stage.values("ENV"):
        for word in shlex.split(value):
            key, _, assigned = word.partition("=")
            env[key] = assigned
    return env


def healthcheck_command(stage: Stage) -> list[str] | None:
    """The HEALTHCHECK's command as an argv (exec form), None when absent or NONE."""
    values = stage.values("HEALTHCHECK")
    if not values:
        return None
    _, _, command = values[-1].partition("CMD ")
    return exec_form(command.strip()) or (["/bin/sh", "-c", command] if command else None)


def final_user(stage: Stage) -> tuple[str, str | None]:
    user = stage.values("USER")[-1] if stage.values("USER") else "0"
    uid, _, gid = user.partition(":")
    return uid, gid or None


def serve_port(argv: list[str]) -> int | None:
    if "--port" in argv:
        return int(argv[argv.index("--port") + 1])
    return None


def dockerfile_problems(text: str) -> list[str]:
    problems: list[str] = []
    dockerfile = parse_dockerfile(text)
    if len(dockerfile.stages) < 2:
        return [f"needs a builder and a runtime stage, found {len(dockerfile.stages)} FROM"]
    final = dockerfile.final
    for stage in dockerfile.stages:
        if not stage.base.startswith("python:3.11-slim"):
            problems.append(f"stage {stage.name} is based on {stage.base}, not python:3.11-slim")

    uid, gid = final_user(final)
    if not uid.isdigit() or int(uid) == 0:
        problems.append(f"final USER {uid!r} must be a numeric non-root uid")
    if gid is not None and (not gid.isdigit() or int(gid) == 0):
        problems.append(f"final USER group {gid!r} must be a numeric non-root gid")

    for stage in [dockerfile.preamble, *dockerfile.stages]:
        for key in [*stage_env(stage), *(v.split("=")[0] for v in stage.values("ARG"))]:
            if is_sensitive(key) or key.startswith("CONNECTOR_"):
                problems.append(f"{key} is baked into the image (ENV/ARG): settings are runtime")

    entrypoint = exec_form(final.values("ENTRYPOINT")[-1]) if final.values("ENTRYPOINT") else None
    if entrypoint != ["connector"]:
        problems.append(f'ENTRYPOINT must be exec-form ["connector"], not {entrypoint}')
    cmd = exec_form(final.values("CMD")[-1]) if final.values("CMD") else None
    exposed = [int(port.split("/")[0]) for v in final.values("EXPOSE") for port in v.split()]
    if not cmd or cmd[0] != "serve":
        problems.append(f"CMD must run serve, not {cmd}")
    else:
        if "--host" not in cmd or cmd[cmd.index("--host") + 1] != "0.0.0.0":  # noqa: S104
            problems.append("CMD serve must listen on --host 0.0.0.0 (127.0.0.1 is unreachable)")
        if serve_port(cmd) not in exposed:
            problems.append(f"CMD serve --port {serve_port(cmd)} is not EXPOSEd ({exposed})")

    venv = venv_path(dockerfile)
    copies = final.values("COPY") + final.values("ADD")
    for value in copies:
        words = value.split()
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        if "--from=builder" not in flags or paths != [venv, venv]:
            problems.append(f"the runtime stage copies more than the builder's venv: COPY {value}")
    if not copies:
        problems.append("the runtime stage copies nothing from the builder")
    for value in final.values("RUN"):
        if "pip " in value:
            problems.append(f"the runtime stage installs packages: RUN {value}")
    if f"{venv}/bin" not in stage_env(final).get("PATH", "").split(":"):
        problems.append(f"{venv}/bin is not on the runtime PATH: ENTRYPOINT connector is not found")

    installs = [v for v in dockerfile.stage("builder").values("RUN") if "pip install" in v]
    if not any("-c constraints.txt" in v for v in installs):
        problems.append("the builder installs without -c constraints.txt (unpinned dependencies)")
    if any(re.search(r"\.whl\[|\.\[|\[(dev|homologation)\]", v) for v in installs):
        problems.append(
            "the builder installs extras: the runtime needs neither dev nor homologation"
        )

    health = healthcheck_command(final)
    if health is None:
        problems.append("no HEALTHCHECK")
    else:
        line = " ".join(health)
        if "/health/live" not in line or f":{serve_port(cmd or [])}/" not in line:
            problems.append(f"HEALTHCHECK must GET /health/live on the served port: {line}")
        if re.search(r"\b(curl|wget)\b", line):
            problems.append("HEALTHCHECK uses curl/wget, which python:3.11-slim lacks")
    return problems


def venv_path(dockerfile: Dockerfile) -> str:
    """The venv the builder creates (`python -m venv PATH`)."""
    for value in dockerfile.stage("builder").values("RUN"):
        found = re.search(r"python3? -m venv (\S+)", value)
        if found:
            return found.group(1)
    raise AssertionError("the builder stage creates no venv (python -m venv ...)")


# ----------------------------------------------------------------------------- .dockerignore


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: `*` and `?` stay within a path segment, `**` spans
    any number of them."""
    out = ""
    for token in re.split(r"(\*\*/|/\*\*$|\*\*|\*|\?)", pattern.strip("/")):
        out += {
            "**/": "(?:.*/)?",
            "/**": "(?:/.*)?",
            "**": ".*",
            "*": "[^/]*",
            "?": "[^/]",
        }.get(token, re.escape(token))
    return re.compile(f"^{out}$")


def dockerignore_patterns(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def dockerignored(patterns: list[str], path: str) -> bool:
    """Whether Docker leaves `path` (relative to the context) out, by .dockerignore rules: the
    last matching pattern wins, `!` re-includes, a pattern matching a directory covers it."""
    prefixes = [path.split("/")[: i + 1] for i in range(path.count("/") + 1)]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _ignore_regex(pattern[1:] if negate else pattern)
        if any(regex.match("/".join(prefix)) for prefix in prefixes):
            excluded = not negate
    return excluded


# ============================================================================= Compose


class MissingVariable(ValueError):
    pass


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable interpolation: $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e},
    ${VAR?e}, ${VAR:+r}, ${VAR+r}, nested defaults, and $$ for a literal $."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("${", i):
            depth, j = 1, i + 2
            while j < len(text) and depth:
                if text.startswith("${", j):
                    depth, j = depth + 1, j + 2
                    continue
                depth += {"{": 0, "}": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise ValueError(f"unclosed ${{ in {text!r}")
            out.append(_expression(text[i + 2 : j - 1], env))
            i = j
            continue
        found = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)", text[i:])
        if not found:
            raise ValueError(f"invalid $ in {text!r}")
        out.append(env.get(found.group(1), ""))
        i += len(found.group(0))
    return "".join(out)


def _expression(body: str, env: Mapping[str, str]) -> str:
    found = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$", body, re.DOTALL)
    if not found:
        raise ValueError(f"invalid interpolation ${{{body}}}")
    name, operator, argument = found.group(1), found.group(2), found.group(3) or ""
    value = env.get(name)
    unset = value is None
    empty = unset or value == ""
    if operator is None:
        return value or ""
    if operator in (":-", "-"):
        return interpolate(argument, env) if (empty if operator == ":-" else unset) else value or ""
    if operator in (":?", "?"):
        if empty if operator == ":?" else unset:
            raise MissingVariable(f"{name}: {interpolate(argument, env)}")
        return value or ""
    # :+ and +
    return interpolate(argument, env) if not (empty if operator == ":+" else unset) else ""


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def variables(node: Any) -> set[str]:
    """Every variable the file interpolates."""
    if isinstance(node, str):
        return set(re.findall(r"(?<!\$)\$\{?([A-Za-z_][A-Za-z0-9_]*)", node))
    if isinstance(node, list):
        return set().union(*(variables(item) for item in node)) if node else set()
    if isinstance(node, dict):
        return set().union(*(variables(v) for v in node.values())) if node else set()
    return set()


def load_compose(text: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(text)  # resolves the `<<: *connector` merges
    return data


def compose_schema_errors(data: Mapping[str, Any]) -> list[str]:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(data)
    ]


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.partition("=")[::2] for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def _depends(service: Mapping[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


def _command(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command")
    return shlex.split(command) if isinstance(command, str) else list(command or [])


def _healthcheck_line(service: Mapping[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test") or []
    return " ".join(test) if isinstance(test, list) else str(test)


REQUIRED_INTERPOLATION = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]*\}$")


def _secret_problem(service: str, key: str, raw: str) -> str | None:
    """A sensitive value must be a required interpolation (or, for a URL, its password)."""
    if "URL" in key.upper():
        sentinel = {name: f"sentinel{name.lower()}" for name in variables(raw)}
        try:
            url = make_url(interpolate(raw, sentinel))
        except Exception as error:  # an unparsable URL is a problem, not a crash
            return f"{service}: {key} is not a database URL: {error}"
        password = url.password
        if password is not None and str(password) not in sentinel.values():
            return f"{service}: {key} carries a literal password"
        names = [n for n, s in sentinel.items() if s == str(password)]
        if password is not None and not re.search(rf"\$\{{{names[0]}:\?", raw):
            return f"{service}: {key}'s password is not a required ${{VAR:?...}} interpolation"
        return None
    if not REQUIRED_INTERPOLATION.match(raw):
        return f"{service}: {key} must be a required ${{VAR:?message}} interpolation, not {raw!r}"
    return None


def compose_problems(data: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    services: Mapping[str, Any] = data.get("services") or {}
    missing = {"postgres", "migrate", "web", "worker"} - set(services)
    if missing:
        return [f"missing services: {sorted(missing)}"]
    postgres, migrate, web, worker = (services[n] for n in ("postgres", "migrate", "web", "worker"))
    grace = graceful_shutdown_seconds()

    if "pg_isready" not in _healthcheck_line(postgres):
        problems.append("postgres has no pg_isready healthcheck")
    named_volumes = set(data.get("volumes") or {})
    mounts = [str(v).split(":")[0] for v in postgres.get("volumes") or []]
    if not any(m in named_volumes for m in mounts):
        problems.append("postgres keeps its data in no named volume")
    if _command(migrate) != ["migrate"]:
        problems.append(f"migrate runs {_command(migrate)}, not ['migrate']")
    if _depends(migrate).get("postgres") != "service_healthy":
        problems.append("migrate must wait for postgres: service_healthy")
    if migrate.get("restart") not in (None, "no", "on-failure") and not str(
        migrate.get("restart")
    ).startswith("on-failure"):
        problems.append(f"migrate restarts ({migrate.get('restart')}) after completing")
    for name, service in (("web", web), ("worker", worker)):
        if _depends(service).get("migrate") != "service_completed_successfully":
            problems.append(f"{name} must wait for migrate: service_completed_successfully")
        if service.get("image") != migrate.get("image"):
            problems.append(f"{name} runs another image than migrate")
        stop = parse_duration(service.get("stop_grace_period", "10s"))
        if stop <= grace:
            problems.append(f"{name} stop_grace_period {stop} s is not above {grace} s")
        environment = service_environment(service)
        if environment.get("CONNECTOR_RUN_BACKGROUND_WORKERS", "").lower() != "false":
            problems.append(f"{name} must set CONNECTOR_RUN_BACKGROUND_WORKERS=false")

    command = _command(web)
    if not command or command[0] != "serve":
        problems.append(f"web runs {command}, not serve")
    port = serve_port(command) or 8000
    health = _healthcheck_line(web)
    if "/health/ready" not in health or f":{port}/" not in health:
        problems.append(f"web's healthcheck must GET /health/ready on port {port}: {health!r}")
    for spec in web.get("ports") or []:
        published = interpolate(str(spec), {})  # defaults only, as an operator starts it
        if published.count(":") < 2 or not published.startswith("127.0.0.1:"):
            problems.append(f"web publishes {published} beyond the loopback interface")
    if _command(worker) != ["worker"]:
        problems.append(f"worker runs {_command(worker)}, not ['worker']")
    for name, service in (("migrate", migrate), ("worker", worker)):
        if not (service.get("healthcheck") or {}).get("disable"):
            problems.append(f"{name} serves no HTTP: the image's HEALTHCHECK must be disabled")

    for name, service in services.items():
        for key, raw in service_environment(service).items():
            if is_sensitive(key):
                problem = _secret_problem(name, key, raw)
                if problem:
                    problems.append(problem)
    return problems


def env_example_problems(text: str) -> list[str]:
    """The committed example of deploy/.env holds no secret."""
    problems = []
    for line in text.splitlines():
        if line.strip().startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if is_sensitive(key.strip()) and value.strip():
            problems.append(f"{key.strip()} has a value in the example file")
    return problems


# ============================================================================= Kubernetes

NAMESPACED_KINDS = {
    "ConfigMap",
    "Deployment",
    "Job",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Ingress",
}


def load_manifests(paths: Iterable[Path]) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in paths:
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


def _component(doc: Mapping[str, Any]) -> str | None:
    labels = doc["spec"]["template"]["metadata"].get("labels") or {}
    component: str | None = labels.get("app.kubernetes.io/component")
    return component


def _by(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents if doc.get("kind") == kind]


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _resolve_port(container: Mapping[str, Any], port: int | str) -> int | None:
    for item in container.get("ports") or []:
        if port in (item.get("name"), item.get("containerPort")):
            return int(item["containerPort"])
    return None


def _argv(container: Mapping[str, Any]) -> list[str]:
    return [*(container.get("command") or []), *(container.get("args") or [])]


def _pod_problems(name: str, pod: Mapping[str, Any], uid: int) -> list[str]:
    problems = []
    pod_security = pod.get("securityContext") or {}
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for container in pod.get("containers") or []:
        security = {**pod_security, **(container.get("securityContext") or {})}
        where = f"{name}/{container['name']}"
        if security.get("runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
        if security.get("runAsUser") != uid:
            problems.append(f"{where}: runAsUser {security.get('runAsUser')} != image uid {uid}")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem is not true")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{where}: capabilities do not drop ALL")
        mounts = container.get("volumeMounts") or []
        tmp = [m for m in mounts if m.get("mountPath") == "/tmp"]  # noqa: S108 - the pod's /tmp
        if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
            problems.append(f"{where}: no emptyDir at /tmp under a read-only root")
        for env in container.get("env") or []:
            if is_sensitive(env["name"]):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if "value" in env or not ref:
                    problems.append(f"{where}: {env['name']} is not from a secretKeyRef")
                elif ref.get("name") != SECRET_NAME:
                    problems.append(f"{where}: {env['name']} is from Secret {ref.get('name')}")
        resources = container.get("resources") or {}
        if not resources.get("requests") or not resources.get("limits"):
            problems.append(f"{where}: resources need requests and limits")
    return problems


def k8s_problems(documents: list[dict[str, Any]], uid: int, port: int) -> list[str]:
    """`uid` and `port`: the image's USER and EXPOSEd port."""
    problems: list[str] = []
    grace = graceful_shutdown_seconds()
    for doc in _by(documents, "Secret"):
        if doc.get("data") or doc.get("stringData"):
            problems.append(f"Secret {doc['metadata']['name']} with data is in the repository")
    deployments = {_component(d): d for d in _by(documents, "Deployment")}
    jobs = _by(documents, "Job")
    web, worker = deployments.get("web"), deployments.get("worker")
    if web is None or worker is None or len(jobs) != 1:
        return [*problems, "needs a web and a worker Deployment and one migration Job"]
    web_name = web["metadata"]["name"]
    web_pod = web["spec"]["template"]
    web_labels = web_pod["metadata"]["labels"]
    web_container = web_pod["spec"]["containers"][0]
    job = jobs[0]
    workloads = [(d["metadata"]["name"], d["spec"]["template"]) for d in (web, worker, job)]

    for name, pod in workloads:
        problems += _pod_problems(name, pod["spec"], uid)
        for item in pod["spec"]["containers"]:
            if item["image"] != web_container["image"]:
                problems.append(f"{name} runs {item['image']}, web {web_container['image']}")
    for deployment in (web, worker):
        selector = deployment["spec"]["selector"].get("matchLabels") or {}
        if not _selects(selector, deployment["spec"]["template"]["metadata"]["labels"]):
            problems.append(f"{deployment['metadata']['name']}: selector misses its own pods")
    other_pods = [pod["metadata"]["labels"] for _, pod in workloads[1:]]

    # ----- web
    argv = _argv(web_container)
    if "serve" not in argv or serve_port(argv) != port:
        problems.append(f"web runs {argv}: must be serve on the image's port {port}")
    env = {e["name"]: e for e in web_container.get("env") or []}
    if (env.get("CONNECTOR_RUN_BACKGROUND_WORKERS") or {}).get("value") != "false":
        problems.append("web must set CONNECTOR_RUN_BACKGROUND_WORKERS=false")
    for probe, path in (("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live")):
        http = (web_container.get(probe) or {}).get("httpGet") or {}
        if http.get("path") != path:
            problems.append(f"web {probe} must GET {path}, not {http.get('path')}")
        if _resolve_port(web_container, http.get("port", -1)) != port:
            problems.append(f"web {probe} port {http.get('port')} is not container port {port}")
    pre_stop = ((web_container.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}
    command = pre_stop.get("command") or []
    if len(command) != 2 or command[0] != "sleep" or not command[1].isdigit():
        problems.append(f"web needs a preStop exec [sleep, N], has {command}")
    else:
        needed = int(command[1]) + grace
        granted = web_pod["spec"].get("terminationGracePeriodSeconds", 30)
        if granted <= needed:
            problems.append(f"web terminationGracePeriodSeconds {granted} <= preStop + {grace}")
    replicas = web["spec"].get("replicas")
    if replicas is not None and replicas < 2:
        problems.append(f"web replicas {replicas} < 2")

    # ----- worker and job
    worker_container = worker["spec"]["template"]["spec"]["containers"][0]
    if _argv(worker_container) != ["worker"]:
        problems.append(f"worker runs {_argv(worker_container)}, not ['worker']")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if "httpGet" in (worker_container.get(probe) or {}):
            problems.append(f"worker {probe} asks HTTP, which the worker does not serve")
    job_container = job["spec"]["template"]["spec"]["containers"][0]
    if _argv(job_container) != ["migrate"]:
        problems.append(f"the Job runs {_argv(job_container)}, not ['migrate']")
    if (
        job["spec"].get("backoffLimit") is None
        or job["spec"].get("ttlSecondsAfterFinished") is None
    ):
        problems.append("the Job needs backoffLimit and ttlSecondsAfterFinished")
    if job["spec"]["template"]["spec"].get("restartPolicy") not in ("Never", "OnFailure"):
        problems.append("the Job's restartPolicy must be Never or OnFailure")
    if job["spec"]["template"]["spec"]["containers"][0].get("envFrom"):
        problems.append("the Job (a pre-sync hook) must not need the ConfigMap")

    # ----- ConfigMaps feeding envFrom
    config_maps = {d["metadata"]["name"]: d for d in _by(documents, "ConfigMap")}
    for name, pod in workloads:
        for container in pod["spec"]["containers"]:
            for source in container.get("envFrom") or []:
                ref = (source.get("configMapRef") or {}).get("name")
                if ref is not None and ref not in config_maps:
                    problems.append(f"{name} reads ConfigMap {ref}, which is not defined")
    for name, config in config_maps.items():
        for key in config.get("data") or {}:
            if is_sensitive(key):
                problems.append(f"ConfigMap {name} holds {key}: secrets belong in {SECRET_NAME}")

    # ----- Service, HPA, PDB, Ingress
    services = _by(documents, "Service")
    service = next((s for s in services if _selects(s["spec"]["selector"], web_labels)), None)
    if service is None:
        problems.append("no Service selects the web pods")
    else:
        if service["spec"].get("type", "ClusterIP") != "ClusterIP":
            problems.append("the Service must be ClusterIP (TLS ends at the Ingress)")
        if any(_selects(service["spec"]["selector"], labels) for labels in other_pods):
            problems.append("the Service also selects worker or migration pods")
        ports = service["spec"]["ports"]
        if not any(
            p.get("port") == 80 and _resolve_port(web_container, p.get("targetPort")) == port
            for p in ports
        ):
            problems.append(f"the Service has no port 80 -> container port {port}")

    hpas = _by(documents, "HorizontalPodAutoscaler")
    if not hpas:
        problems.append("no HorizontalPodAutoscaler")
    for hpa in hpas:
        target = hpa["spec"]["scaleTargetRef"]
        if (target.get("kind"), target.get("name")) != ("Deployment", web_name):
            problems.append(f"the HPA scales {target.get('kind')}/{target.get('name')}")
        if hpa["spec"].get("minReplicas", 1) < 2:
            problems.append("the HPA's minReplicas is below 2")
        resources = [m["resource"]["name"] for m in hpa["spec"].get("metrics") or []]
        if "cpu" not in resources:
            problems.append("the HPA does not scale on CPU")
    if replicas is None and not hpas:
        problems.append("web has no replicas and no HPA")

    pdbs = _by(documents, "PodDisruptionBudget")
    if not any(_selects(p["spec"]["selector"].get("matchLabels") or {}, web_labels) for p in pdbs):
        problems.append("no PodDisruptionBudget selects the web pods")
    floor = min([h["spec"].get("minReplicas", 1) for h in hpas] or [replicas or 1])
    for pdb in pdbs:
        min_available = pdb["spec"].get("minAvailable")
        if isinstance(min_available, int) and min_available >= floor:
            problems.append(f"the PDB's minAvailable {min_available} blocks drains at {floor} pods")
        if pdb["spec"].get("maxUnavailable") == 0 or min_available == "100%":
            problems.append("the PDB allows no voluntary disruption")

    ingresses = _by(documents, "Ingress")
    if not ingresses:
        problems.append("no Ingress")
    for ingress in ingresses:
        spec = ingress["spec"]
        annotations = ingress["metadata"].get("annotations") or {}
        if "nginx.ingress.kubernetes.io/ssl-protocols" in annotations:
            problems.append("ssl-protocols is no ingress-nginx annotation (controller ConfigMap)")
        tls_hosts = {h for t in spec.get("tls") or [] if t.get("secretName") for h in t["hosts"]}
        for rule in spec.get("rules") or []:
            if rule.get("host") not in tls_hosts:
                problems.append(f"Ingress host {rule.get('host')} has no TLS secret")
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                if service is None or backend["name"] != service["metadata"]["name"]:
                    problems.append(f"Ingress sends to Service {backend['name']}")
                    continue
                wanted = backend["port"].get("name") or backend["port"].get("number")
                if not any(
                    wanted in (p.get("name"), p.get("port")) for p in service["spec"]["ports"]
                ):
                    problems.append(f"Ingress sends to port {wanted}, not on the Service")
    return problems


def kustomization_problems(directory: Path, kustomization: Mapping[str, Any]) -> list[str]:
    listed = set(kustomization.get("resources") or [])
    present = {p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml"}
    problems = [f"{name} is not in kustomization.yaml" for name in sorted(present - listed)]
    problems += [f"kustomization.yaml lists missing {name}" for name in sorted(listed - present)]
    return problems
