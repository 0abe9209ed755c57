"""The project's lock files (``requirements*.txt``) read against this environment's distributions."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

# Distributions that are another build of the same release and module as one this environment has:
# the serving lock's xgboost-cpu is xgboost's CPU-only build.
BUILDS_OF = {"xgboost-cpu": "xgboost"}
# What ``python -m venv`` puts into a virtualenv besides a lock (the installer itself; Python 3.11
# seeds setuptools too, but older than what torch asks for, so the locks pin it).
VENV_SEEDS = {"pip"}


def pins(path: Path) -> dict[str, str]:
    """A lock's pins (``-r`` lines left out): normalized name -> version."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, _, version = line.partition("==")
        if not version:
            raise ValueError(f"{path.name}: {line!r} is not pinned")
        found[re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()] = version.split(";")[0].strip()
    return found


def lock_problems(lock: Path, on_top_of: tuple[Path, ...] = ()) -> list[str]:
    """What ``pip check`` would say of a virtualenv made of ``lock`` (installed over the locks
    ``on_top_of``): each dependency of a distribution ``lock`` pins (on this platform, without
    extras) that no lock pins, or that is pinned at a version the dependency refuses. A lock with
    holes installs its missing dependencies unpinned. The requirements are read from this
    environment's metadata of the same releases."""
    pinned = {name: version for base in on_top_of for name, version in pins(base).items()} | pins(lock)
    problems = []
    for name in pins(lock):
        if name in BUILDS_OF:
            continue  # its metadata here is the other build's (xgboost's asks for NCCL, xgboost-cpu's does not)
        for text in importlib.metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            wanted = canonicalize_name(requirement.name)
            if wanted in VENV_SEEDS:
                continue
            found = pinned.get(wanted) or pinned.get(next((b for b, o in BUILDS_OF.items() if o == wanted), ""))
            if found is None:
                problems.append(f"{name} needs {requirement}, which is not pinned")
            elif not requirement.specifier.contains(Version(found).public, prereleases=True):
                problems.append(f"{name} needs {requirement}, {found} is pinned")
    return problems
