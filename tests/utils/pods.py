"""A Kubernetes pod as a process of this machine: the image its Dockerfile builds, laid out under a
temporary root, and the container a rendered pod spec names (command, arguments, environment, the
secrets it takes) run in it, seeing only what the image holds.

The image is the Dockerfile read instruction by instruction, each ``FROM`` a stage under the root:
``COPY`` puts the build context's files (``--from``: an earlier stage's) at their paths, ``WORKDIR``
and ``ENV`` are kept, ``RUN python -m venv`` and the ``pip install`` of the requirements file make
the image's virtualenv, the ``pip install .`` of the copied sources installs the project into it. An
instruction this reading does not know fails the build, so the emulation cannot silently drift
from the Dockerfile. The virtualenv is made of the distributions the requirements file pins, each
linked from this checkout's environment (installed from the same pins; a version that differs
fails), which takes seconds where a download would take minutes: it holds what the image's
requirements hold and nothing else (no test tools, no checkout on its path; a dependency the file
does not pin is missing, not quietly added). The process runs from the image's ``WORKDIR`` with the
image's environment, the pod's and the secret's, and nothing of this one's.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import Version

from core.settings import PROJECT_ROOT
from tests.utils.locks import BUILDS_OF, lock_problems, pins

# The system's own programs a slim Debian image has too (the interpreter's libraries come with it).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Image:
    """An image laid out under ``root``: its virtualenv, working directory, environment, entrypoint."""

    root: Path
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=lambda: {"PATH": SYSTEM_PATH})
    venvs: dict[str, Path] = field(default_factory=dict)  # image path -> where it lies
    entrypoint: list[str] = field(default_factory=list)

    def path(self, image_path: str) -> Path:
        """Where an absolute path of the image lies on this machine."""
        return self.root / image_path.lstrip("/")

    def resolve(self, program: str) -> str:
        """A command's program as the image's PATH finds it (under the root first)."""
        if "/" in program:
            return str(self.path(program))
        for folder in self.env["PATH"].split(":"):
            for candidate in (self.path(folder) / program, Path(folder) / program):
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    return str(candidate)
        raise FileNotFoundError(f"{program} is not on the image's PATH {self.env['PATH']}")


def build(dockerfile: Path, root: Path, context: Path = PROJECT_ROOT) -> Image:
    """The image ``dockerfile`` builds from ``context``, laid out under ``root``: its last stage.

    Each ``FROM`` starts a stage of its own under ``root``; ``COPY --from=<stage>`` takes a path of an
    earlier stage (a virtualenv built in one stage and copied into a slimmer one, as the serving
    image does)."""
    stages: dict[str, Image] = {}
    image = Image(root=root / "stage-0")
    args: dict[str, str] = {}
    for instruction in _instructions(dockerfile):
        keyword, _, rest = instruction.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":  # the base image's Python is this machine's (the same minor version)
            words = rest.split()
            if stages:
                image = Image(root=root / f"stage-{len(stages)}")
            stages[words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))] = image
            image.root.mkdir(parents=True, exist_ok=True)
        elif keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        elif keyword == "ENV":
            for word in shlex.split(rest):
                name, _, value = word.partition("=")
                image.env[name] = _expand(value, {**image.env, **args})
        elif keyword == "WORKDIR":
            image.workdir = _absolute(image.workdir, rest.strip())
            image.path(image.workdir).mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            _copy(image, context, shlex.split(rest), stages)
        elif keyword == "RUN":
            # A build's mounts (the CA secret, the wheels folder, pip-install.sh) are this machine's own.
            for command in re.sub(r"^(--mount=\S+\s+)+", "", rest).split("&&"):
                _run(image, shlex.split(command))
        elif keyword in ("USER", "EXPOSE", "HEALTHCHECK", "CMD"):
            # This machine's user runs the process, its files its own; a port and a healthcheck are
            # the engine's; the tests give a container its command.
            continue
        elif keyword == "ENTRYPOINT":
            image.entrypoint = list(json.loads(rest))
        else:
            raise ValueError(f"{dockerfile.name}: no emulation of {keyword}")
    return image


def _instructions(dockerfile: Path) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined and comments left out."""
    joined, current = [], ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        joined.append(current + stripped)
        current = ""
    return joined


def _expand(value: str, known: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: known.get(m.group(1), ""), value)


def _absolute(workdir: str, path: str) -> str:
    return path if path.startswith("/") else f"{workdir.rstrip('/')}/{path}"


def _copy(image: Image, context: Path, words: list[str], stages: dict[str, Image]) -> None:
    stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
    *sources, target = [word for word in words if not word.startswith("--")]
    destination = image.path(_absolute(image.workdir, target))
    if stage is not None:  # from an earlier stage: its files, linked, and the virtualenvs among them
        earlier = stages[stage]
        for source in sources:
            shutil.copytree(earlier.path(source), destination, symlinks=True, copy_function=_link, dirs_exist_ok=True)
            if source in earlier.venvs:
                image.venvs[target] = destination
        return
    into_folder = target.endswith("/") or len(sources) > 1 or target in (".", "./")
    for source in sources:
        origin = context / source
        place = destination / origin.name if into_folder and origin.is_file() else destination
        if origin.is_dir():
            shutil.copytree(origin, place, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            place.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, place)


def _link(origin: str, place: str) -> None:
    """A file of one stage in the next, linked (a virtualenv's gigabyte is not copied)."""
    try:
        os.link(origin, place)
    except OSError:
        shutil.copy2(origin, place)


def _run(image: Image, argv: list[str]) -> None:
    """The RUN commands the platform's Dockerfiles use; any other fails the build."""
    if not argv:
        return
    if argv[0] in ("apt-get", "rm", "useradd", "chown"):
        return  # system packages this machine has (libgomp1); users: the process runs as this one
    if argv[0] == "mkdir":
        for folder in argv[1:]:
            if not folder.startswith("-"):
                image.path(folder).mkdir(parents=True, exist_ok=True)
        return
    if argv[0] == "pip-install":  # infra/docker/pip-install.sh VENV ARGS: the venv made first if missing
        if argv[1] not in image.venvs:
            _run(image, ["python", "-m", "venv", argv[1]])
        _run(image, [f"{argv[1]}/bin/pip", "install", *argv[2:]])
        return
    if argv[:3] == ["python", "-m", "venv"]:
        venv = image.path(argv[3])
        subprocess.run([_base_python(), "-m", "venv", "--without-pip", str(venv)], check=True)
        image.venvs[argv[3]] = venv
        return
    if len(argv) > 2 and argv[0].endswith("/bin/pip") and argv[1] == "install":
        venv_path = argv[0].removesuffix("/bin/pip")
        venv = image.venvs[venv_path]
        options = argv[2:]
        if "-r" in options:
            _link_requirements(image.path(_absolute(image.workdir, options[options.index("-r") + 1])), venv)
        elif options[-1] == ".":
            _install_sources(image.path(image.workdir), venv)
        else:
            raise ValueError(f"no emulation of pip install {' '.join(options)}")
        return
    raise ValueError(f"no emulation of RUN {shlex.join(argv)}")


def _base_python() -> str:
    """The interpreter this environment's virtualenv was made from (a venv of a venv would chain)."""
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}")


def _site_packages(venv: Path) -> Path:
    relative = Path(sysconfig.get_path("purelib")).relative_to(sys.prefix)
    return venv / relative


def _link_requirements(requirements: Path, venv: Path) -> None:
    """Every pinned distribution of ``requirements`` into ``venv``, linked from this environment's
    site-packages.

    The distribution is looked up there alone, not on the test process's path (a folder on it may
    hold another copy's metadata, whose files would lie elsewhere and be left out), and every file
    of it that site-packages holds must be in the image afterwards: a file left out fails the build
    here, not an import in the image's service later."""
    here = Path(sysconfig.get_path("purelib"))
    target = _site_packages(venv)
    left_out = []
    for name, pinned in pins(requirements).items():
        found = list(importlib.metadata.distributions(name=BUILDS_OF.get(name, name), path=[str(here)]))
        if not found:
            raise ValueError(f"{name}: pinned, not installed in {here}: run make setup")
        distribution = found[0]
        # The same release: a local label is the build this machine has (torch's CPU wheel, +cpu).
        if Version(distribution.version).public != Version(pinned).public:
            raise ValueError(f"{name}: {pinned} pinned, {distribution.version} installed here: run make setup")
        if not distribution.files:
            raise ValueError(f"{name}: its installed files are not recorded (no RECORD): run make setup")
        for file in distribution.files:
            # Where the record puts the file, its ``..`` folded but its links not followed (an
            # environment whose files link elsewhere still holds them in site-packages).
            origin = Path(os.path.normpath(distribution.locate_file(file)))
            try:
                relative = origin.relative_to(os.path.normpath(here))
            except ValueError:
                continue  # scripts and data outside site-packages: the image's commands are python -m
            place = target / relative
            if not origin.is_file():
                continue  # recorded, never written (a bytecode file of another interpreter)
            if not place.exists():
                place.parent.mkdir(parents=True, exist_ok=True)
                _link(str(origin), str(place))
            if not place.is_file():
                left_out.append(f"{name}: {relative}")
    if left_out:
        raise ValueError(f"{len(left_out)} files not in the image's virtualenv: " + "; ".join(left_out[:10]))
    problems = lock_problems(requirements)
    if problems:  # what ``pip check`` would say of the image's virtualenv
        raise ValueError(f"{requirements.name}: " + "; ".join(problems))


def _install_sources(source: Path, venv: Path) -> None:
    """``pip install --no-deps .`` of the copied sources: their packages into site-packages."""
    target = _site_packages(venv)
    for package in source.iterdir():
        if package.is_dir() and (package / "__init__.py").is_file():
            shutil.copytree(package, target / package.name, dirs_exist_ok=True)


def secret_environment(manifest: dict[str, Any]) -> dict[str, str]:
    """The variables a Secret manifest gives a container through ``envFrom`` (``stringData`` or
    base64 ``data``)."""
    import base64

    values = dict(manifest.get("stringData") or {})
    values.update({k: base64.b64decode(v).decode() for k, v in (manifest.get("data") or {}).items()})
    return values


def container_process(
    image: Image, container: dict[str, Any], secrets: dict[str, dict[str, str]]
) -> tuple[list[str], dict[str, Any]]:
    """The process of a rendered pod's container (as ``ApiClient().sanitize_for_serialization`` gives
    it) in ``image``: (its argv, the ``subprocess`` options). Its command or the image's entrypoint, its
    arguments; the image's environment, then its secrets' (``envFrom``), then its own ``env``; the
    image's working directory."""
    env = dict(image.env)
    for source in container.get("envFrom") or []:
        env.update(secrets[source["secretRef"]["name"]])
    env.update({item["name"]: item["value"] for item in container.get("env") or []})
    # The image's folders on its PATH lie under the root; the system's are this machine's.
    env["PATH"] = ":".join(str(image.path(p)) if image.path(p).is_dir() else p for p in env["PATH"].split(":"))
    env["HOME"] = str(image.path(image.workdir))  # a folder the process may write (the image's user owns it)
    command = [*(container.get("command") or image.entrypoint), *(container.get("args") or [])]
    return [image.resolve(command[0]), *command[1:]], {"cwd": image.path(image.workdir), "env": env}


def run_container(
    image: Image, container: dict[str, Any], secrets: dict[str, dict[str, str]], timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run a rendered pod's container in ``image`` to its end (:func:`container_process`)."""
    argv, options = container_process(image, container, secrets)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **options)
