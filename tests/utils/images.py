"""What the Dockerfiles put into the images, read without a Docker engine."""

from __future__ import annotations

import shlex
from pathlib import Path

from core.settings import PROJECT_ROOT

DOCKERFILES = PROJECT_ROOT / "infra" / "docker"


def dockerfile_sources(dockerfile: Path) -> list[str]:
    """The build-context paths a Dockerfile copies (not from other stages)."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        if not line.upper().startswith(("COPY ", "ADD ")):
            continue
        words = shlex.split(line, comments=True)
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]):
            continue
        sources += args[:-1]
    return sources


def image_packages(image: str) -> list[str]:
    """The project's Python packages an image copies (folders with an ``__init__.py``)."""
    sources = dockerfile_sources(DOCKERFILES / f"{image}.Dockerfile")
    return [s for s in sources if (PROJECT_ROOT / s / "__init__.py").is_file()]
