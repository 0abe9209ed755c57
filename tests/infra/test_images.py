"""``make images`` and the Debian-made base where they cannot work: no Docker client, no daemon, an
image that does not exist. Each stops at once with one line that names the fix, before anything is
built or downloaded."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT

SCRIPTS = PROJECT_ROOT / "infra" / "docker"


def _run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shutil.which("bash") or "/bin/bash", str(SCRIPTS / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _without_docker(tmp_path: Path) -> dict[str, str]:
    """This environment with a PATH of the tools the scripts use, and no docker among them."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("dirname", "sed", "tr", "id", "mktemp", "date", "git", "python3", "env", "timeout", "basename"):
        found = shutil.which(tool)
        if found:
            (tools / tool).symlink_to(found)
    return {**os.environ, "PATH": str(tools)}


@pytest.mark.parametrize("script", ["images.sh", "debian-base.sh"])
def test_without_a_docker_client_the_scripts_say_to_install_one(tmp_path: Path, script: str) -> None:
    done = _run(script, env=_without_docker(tmp_path))
    assert done.returncode == 1
    name = script.removesuffix(".sh")
    assert done.stderr.strip() == f"{name}: no docker client: install Docker (Debian: apt-get install docker.io)"


@pytest.mark.parametrize("script", ["images.sh", "debian-base.sh"])
def test_without_a_daemon_the_scripts_say_to_start_it(tmp_path: Path, script: str) -> None:
    """The real docker client, pointed at a socket where no daemon listens."""
    assert shutil.which("docker"), "Docker's client is one of the test servers' packages (make test-servers)"
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path / 'no-daemon.sock'}"}
    done = _run(script, env=env)
    assert done.returncode == 1
    name = script.removesuffix(".sh")
    expected = f"{name}: no Docker daemon answers: start it (systemctl start docker, or dockerd & as root)"
    assert done.stderr.strip() == expected


def test_an_image_that_does_not_exist_is_named_with_the_ones_that_do() -> None:
    done = _run("images.sh", "airflw", env=dict(os.environ))
    assert done.returncode == 1
    names = "airflow mlflow serving training postgres redis prometheus pushgateway s3"
    assert done.stderr.strip() == f"images: no image named airflw (one of: {names})"
