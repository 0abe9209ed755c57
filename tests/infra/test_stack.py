"""``make up`` and ``make down`` (``infra/docker/stack.sh``) where the stack cannot start: no Docker
client, no .env, a value missing from it, a port taken, no daemon. Each stops before anything starts,
with one line that names the fix. The Docker daemon these tests see is none (a socket where nothing
listens), so no check depends on what this machine runs."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

from core.settings import PROJECT_ROOT

STACK = PROJECT_ROOT / "infra" / "docker" / "stack.sh"


def _env_file(path: Path, empty: str | None = None) -> Path:
    """.env.example with every compose value set, but ``empty``."""
    text = (PROJECT_ROOT / ".env.example").read_text()
    filled = re.sub(r"^([A-Z0-9_]+)=$", r"\1=a-long-enough-value", text, flags=re.MULTILINE)
    if empty is not None:
        filled = re.sub(rf"^{empty}=.*$", f"{empty}=", filled, flags=re.MULTILINE)
    path.write_text(filled)
    return path


def _stack(action: str, env_file: Path, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENV_FILE": str(env_file), "DOCKER_HOST": f"unix://{tmp_path / 'no-daemon.sock'}", **extra}
    bash = shutil.which("bash") or "/bin/bash"
    return subprocess.run([bash, str(STACK), action], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_without_an_env_file_make_up_says_to_copy_the_example(tmp_path: Path) -> None:
    done = _stack("up", tmp_path / ".env", tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"stack: no {tmp_path / '.env'}: copy .env.example to .env and set the compose passwords in it"
    )


def test_a_value_missing_from_the_env_file_is_named(tmp_path: Path) -> None:
    env_file = _env_file(tmp_path / ".env", empty="REDIS_PASSWORD")
    done = _stack("up", env_file, tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == f"stack: a value is missing from {env_file}: set REDIS_PASSWORD in .env"


def test_a_taken_port_is_named_with_how_to_find_what_holds_it(tmp_path: Path) -> None:
    """The first port the compose file publishes, held by this test (or by whatever holds it already)."""
    published = re.findall(r'"127\.0\.0\.1:(\d+):', (PROJECT_ROOT / "docker-compose.yml").read_text())
    port = int(published[0])
    holder = socket.socket()
    try:
        try:
            holder.bind(("127.0.0.1", port))
            holder.listen()
        except OSError:
            pass  # already held: the refusal is the same
        done = _stack("up", _env_file(tmp_path / ".env"), tmp_path)
    finally:
        holder.close()
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"stack: port {port} is taken on 127.0.0.1: stop what listens there (ss -ltnp 'sport = :{port}'), "
        "then make up again"
    )


def test_without_a_daemon_make_down_says_to_start_it(tmp_path: Path) -> None:
    done = _stack("down", _env_file(tmp_path / ".env"), tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "stack: no Docker daemon answers: start it (systemctl start docker, or dockerd & as root)"
    )


def test_without_a_docker_client_make_up_says_to_install_one(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("dirname", "sed", "python3", "grep", "head", "tr"):
        found = shutil.which(tool)
        if found:
            (tools / tool).symlink_to(found)
    done = _stack("up", _env_file(tmp_path / ".env"), tmp_path, PATH=str(tools))
    assert done.returncode == 1
    assert done.stderr.strip() == "stack: no docker client: install Docker (Debian: apt-get install docker.io)"


def test_the_debian_overrides_name_services_of_the_stack_and_images_make_images_builds() -> None:
    """infra/compose/debian-local.yml only swaps images (and S3's start) of services the compose file
    has; each image it names is one of infra/docker/debian/'s Dockerfiles."""
    import yaml

    services = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"]
    overrides = yaml.safe_load((PROJECT_ROOT / "infra" / "compose" / "debian-local.yml").read_text())["services"]
    assert set(overrides) <= set(services)
    built = {path.stem for path in (PROJECT_ROOT / "infra" / "docker" / "debian").glob("*.Dockerfile")}
    named = {o["image"].removeprefix("mlops-").removesuffix(":local") for o in overrides.values() if "image" in o}
    assert named == built
    assert {"postgres", "redis", "minio", "pushgateway", "prometheus"} <= set(overrides)
