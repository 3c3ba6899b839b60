"""deploy/Dockerfile, carried out on this machine (no Docker engine here).

The builder stage's instructions run in order (WORKDIR, COPY through the .dockerignore, ENV and
RUN with `/bin/sh -c`), with the container's /opt, /tmp, /src and /app mapped under a temporary
root; the runtime stage contributes its ENV, WORKDIR, USER, HEALTHCHECK, ENTRYPOINT and CMD, so
that the commands the container would run can run here, from the very venv the image would copy.
An instruction this does not know fails the build: extend it when the Dockerfile grows.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

from tests.deploy.checks import (
    Dockerfile,
    Stage,
    dockerignored,
    exec_form,
    healthcheck_command,
    stage_env,
)

# Container paths that live under the temporary root.
_CONTAINER_PATH = re.compile(r"(?<![\w./$-])/(opt|tmp|src|app)(?=/|\s|$|:)")
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# python:3.11-slim's own ENV (docker image inspect python:3.11-slim).
_BASE_IMAGE_ENV = {"LANG": "C.UTF-8"}


@dataclass
class Image:
    root: Path
    env: dict[str, str]
    workdir: Path
    uid: int
    gid: int
    entrypoint: list[str]
    cmd: list[str]
    healthcheck: list[str]
    build_log: Path
    # Processes take the image's uid/gid when this runs as root and that uid can run the venv's
    # interpreter (a Python under /root, e.g. pyenv's, is out of its reach).
    drop_privileges: bool
    logs: list[Path] = field(default_factory=list)

    def argv(self, command: list[str] | None = None) -> list[str]:
        """ENTRYPOINT + command (CMD by default), the entrypoint found on the image's PATH."""
        entry, *rest = self.entrypoint
        found = shutil.which(entry, path=self.env["PATH"])
        assert found, f"{entry} is not on the image's PATH {self.env['PATH']}"
        return [found, *rest, *(self.cmd if command is None else command)]

    def user(self) -> dict[str, Any]:
        """Popen arguments that drop to the image's USER, when this runs as root."""
        if not self.drop_privileges:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def run(
        self, command: list[str], environment: dict[str, str], timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(command),
            env={**self.env, **environment},
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **self.user(),
        )

    def start(self, name: str, command: list[str], environment: dict[str, str]) -> Process:
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        self.logs.append(log)
        handle = log.open("wb")
        popen = subprocess.Popen(
            self.argv(command),
            env={**self.env, **environment},
            cwd=self.workdir,
            stdout=handle,
            stderr=subprocess.STDOUT,
            **self.user(),
        )
        return Process(name, popen, log, handle)

    def execute(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """An exec-form command (a HEALTHCHECK's, say) in the container: its ENV, WORKDIR, USER."""
        return subprocess.run(
            argv,
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            **self.user(),
        )


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        self.handle.flush()
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def terminate(self, timeout: float) -> tuple[int | None, float]:
        """SIGTERM, as `docker stop` and the kubelet send it; (returncode, seconds to exit)."""
        started = time.monotonic()
        self.popen.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.alive():
            self.popen.kill()
            self.popen.wait(timeout=10)
        self.handle.close()


# ----------------------------------------------------------------------------- the build


def build(
    dockerfile: Dockerfile, context: Path, ignore: list[str], root: Path, cache_env: dict[str, str]
) -> Image:
    """Carry out the builder stage under `root`, then read the runtime stage."""
    (root / "logs").mkdir(parents=True)
    build_log = root / "logs" / "build.log"
    # `python` in the builder is python:3.11-slim's; here, one of this interpreter's version.
    interpreter = _interpreter()
    shims = root / "shims"
    shims.mkdir()
    (shims / "python").symlink_to(interpreter)
    env = {
        **_BASE_IMAGE_ENV,
        "PATH": f"{shims}:{_SYSTEM_PATH}",
        "HOME": os.environ.get("HOME", "/root"),  # pip's cache: the build's cache mount
        **cache_env,
    }
    cwd = root
    with build_log.open("w") as log:
        for instruction, value in dockerfile.stage("builder").instructions:
            if instruction == "ENV":
                env.update(_expanded(stage_env_line(value), env))
            elif instruction == "WORKDIR":
                cwd = Path(_map(root, value))
                cwd.mkdir(parents=True, exist_ok=True)
            elif instruction == "COPY":
                _copy(value, context, ignore, cwd)
            elif instruction == "RUN":
                command = _map(root, re.sub(r"^(--mount=\S+\s+)+", "", value))
                log.write(f"$ {command}\n")
                log.flush()
                done = subprocess.run(
                    ["/bin/sh", "-c", command], cwd=cwd, env=env, stdout=log, stderr=log
                )
                assert done.returncode == 0, f"RUN {value} failed: see {build_log}"
            elif instruction != "ARG":
                raise NotImplementedError(f"builder instruction {instruction} {value}")

    runtime = dockerfile.final
    runtime_env = {**_BASE_IMAGE_ENV, "PATH": _SYSTEM_PATH}
    workdir = root
    uid = gid = 0
    for instruction, value in runtime.instructions:
        if instruction == "ENV":
            runtime_env.update(_expanded(stage_env_line(value), runtime_env, root))
        elif instruction == "WORKDIR":
            workdir = Path(_map(root, value))
            workdir.mkdir(parents=True, exist_ok=True)  # root-owned, as in the image
        elif instruction == "USER":
            user, _, group = value.partition(":")
            uid, gid = int(user), int(group or user)
        elif instruction == "COPY":
            words = value.split()
            # The builder's venv lands at the same path (venv scripts hold absolute paths),
            # which here is the same directory: nothing to copy.
            assert words[0] == "--from=builder" and words[1] == words[2], value
        elif instruction == "RUN":
            if not re.match(r"(groupadd|useradd)\b", value) or not all(
                re.match(r"(groupadd|useradd)\b", part.strip()) for part in value.split("&&")
            ):
                raise NotImplementedError(f"runtime RUN {value}")
            # The user exists in the image; here the processes take its uid/gid directly.
        elif instruction not in ("EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD", "ARG"):
            raise NotImplementedError(f"runtime instruction {instruction} {value}")
    if uid:
        runtime_env["HOME"] = "/nonexistent"  # useradd --home-dir /nonexistent
    root.chmod(0o755)
    health = healthcheck_command(runtime) or []
    return Image(
        root=root,
        env=runtime_env,
        workdir=workdir,
        uid=uid,
        gid=gid,
        entrypoint=exec_form(runtime.values("ENTRYPOINT")[-1]) or [],
        cmd=exec_form(runtime.values("CMD")[-1]) or [],
        healthcheck=health,
        build_log=build_log,
        drop_privileges=os.geteuid() == 0 and uid != 0 and _world_executable(interpreter),
    )


def _interpreter() -> str:
    """This interpreter's version, preferably one any user can run (as in the image)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base = getattr(sys, "_base_executable", sys.executable)
    candidates = [base, shutil.which(version), f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
    for candidate in candidates:
        if candidate and Path(candidate).exists() and _world_executable(candidate):
            done = subprocess.run(
                [candidate, "-c", "import venv, ensurepip"], capture_output=True, check=False
            )
            if done.returncode == 0:
                return candidate
    return base


def _world_executable(path: str) -> bool:
    """Whether a user who is neither owner nor in the group can execute `path`."""
    real = Path(os.path.realpath(path))
    if not real.stat().st_mode & stat.S_IXOTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in real.parents)


def stage_env_line(value: str) -> dict[str, str]:
    return stage_env(Stage(base="", name=None, instructions=[("ENV", value)]))


def _map(root: Path, text: str) -> str:
    return _CONTAINER_PATH.sub(lambda m: f"{root}/{m.group(1)}", text)


def _expanded(
    values: dict[str, str], env: dict[str, str], root: Path | None = None
) -> dict[str, str]:
    out = {}
    for key, value in values.items():
        value = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)
        out[key] = _map(root, value) if root is not None else value
    return out


def _copy(value: str, context: Path, ignore: list[str], cwd: Path) -> None:
    *sources, destination = shlex.split(value)
    assert not any(s.startswith("--") for s in sources), f"COPY flags in the builder: {value}"
    target = cwd / destination
    for source in sources:
        origin = context / source
        if origin.is_dir():
            for path in sorted(origin.rglob("*")):
                relative = path.relative_to(context).as_posix()
                if path.is_file() and not dockerignored(ignore, relative):
                    copied = target / path.relative_to(origin)
                    copied.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, copied)
        else:
            assert not dockerignored(ignore, source), f"COPY {source}: excluded from the context"
            copied = target / origin.name if destination.endswith("/") else target
            copied.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, copied)


# ----------------------------------------------------------------------------- waiting


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(base_url: str, process: Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise AssertionError(f"{process.name} exited: {process.output()}")
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base_url} not ready after {timeout} s: {process.output()}")


def wait_for_client(process: Process, port: int, timeout: float = 10) -> None:
    """Until a client's connection to `port` is established with the process."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connections = psutil.Process(process.pid).net_connections(kind="tcp")
        if any(c.laddr.port == port and c.status == "ESTABLISHED" for c in connections):
            return
        time.sleep(0.05)
    raise AssertionError(f"no client connected to {process.name} on {port}")


def wait_for_database_connection(process: Process, port: int, timeout: float = 60) -> None:
    """Until the process holds a connection to PostgreSQL: it has started (the worker's signal
    handlers are installed before its first query) and checked the schema."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise AssertionError(f"{process.name} exited: {process.output()}")
        connections = psutil.Process(process.pid).net_connections(kind="tcp")
        if any(c.raddr and c.raddr.port == port and c.status == "ESTABLISHED" for c in connections):
            return
        time.sleep(0.2)
    raise AssertionError(f"{process.name} never connected to the database: {process.output()}")
