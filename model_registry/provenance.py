"""Which model bundles may be loaded: files of the configured registry's store, unchanged since
registration.

Loading a bundle runs code: MLflow executes the models-from-code entry and imports the packages
shipped under ``code/``. A registry entry is a pointer that anyone with registry write access can
set, so before anything is fetched the version's storage location must lie in the registry's own
artifact store (``Settings.allowed_model_roots``): a version registered from ``file:///tmp/x``,
another bucket or another host's ``mlflow-artifacts://`` would otherwise make the service read
arbitrary files or send requests to arbitrary hosts (SSRF through artifact locations).

Files inside the store can still be changed after registration, so registration records a sha256
over every file of the bundle as a version tag, and a load recomputes it on a private copy and
loads that very copy: a changed file, or a version that never went through registration, is
refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from core.settings import Settings
from model_registry.tracking import client, require_configured

log = logging.getLogger(__name__)

BUNDLE_DIGEST_TAG = "bundle_sha256"
# MLflow rewrites this file at the model's root whenever the model is fetched by registry name
# (``models:/name/version``), naming the version last fetched, so no fixed digest can include it;
# MLflow never reads it back, so leaving it out lets nothing in.
_REWRITTEN_BY_MLFLOW = "registered_model_meta"
_LOCAL_SCHEMES = ("", "file")
# URIs that MLflow resolves to another storage location through the tracking server.
_INDIRECT_SCHEMES = ("models", "runs")


class UntrustedModelError(RuntimeError):
    """A model version whose files lie outside the registry's store, or differ from those registered."""


def bundle_digest(directory: Path) -> str:
    """sha256 over every file of a bundle (relative path and content), in a fixed order.

    Every file counts, not only the fitted model: MLmodel says what to run, and the entry file and
    shipped packages are run. A symbolic link is refused, as a bundle is plain files.
    """
    directory = Path(directory)
    files: list[tuple[str, Path]] = []
    for folder, dirs, names in os.walk(directory):
        for name in [*dirs, *names]:
            if (Path(folder) / name).is_symlink():
                raise UntrustedModelError(f"bundle file {Path(folder) / name} is a symbolic link")
        for name in names:
            path = Path(folder) / name
            relative = path.relative_to(directory).as_posix()
            if relative != _REWRITTEN_BY_MLFLOW:
                files.append((relative, path))
    digest = hashlib.sha256()
    for relative, path in sorted(files):
        with path.open("rb") as handle:
            content = hashlib.file_digest(handle, "sha256").digest()
        digest.update(relative.encode() + b"\0" + content)
    return digest.hexdigest()


def _segments(path: str, uri: str) -> list[str]:
    parts = [p for p in PurePosixPath(unquote(path)).parts if p != "/"]
    if any(p in (".", "..") for p in parts):
        raise UntrustedModelError(f"model files at {uri!r}: '.' and '..' are not allowed in an artifact location")
    return parts


def check_location(settings: Settings, uri: str) -> None:
    """Refuse ``uri`` unless it lies under one of the registry's artifact roots.

    Local paths are compared once symlinks and ``..`` are resolved; other URIs by scheme, host or
    bucket, and whole path segments (``s3://models-evil`` is not under ``s3://models``). An
    ``mlflow-artifacts:`` URI may only name the tracking server itself.
    """
    roots = settings.allowed_model_roots
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment:
        raise UntrustedModelError(f"model files at {uri!r}: a query or fragment is not allowed")
    if scheme in _LOCAL_SCHEMES:
        if parts.netloc:
            raise UntrustedModelError(f"model files at {uri!r}: a file:// location names no host")
        path = Path(unquote(parts.path) if scheme else uri).resolve()
        for root in roots:
            root_parts = urlsplit(root)
            if root_parts.scheme.lower() in _LOCAL_SCHEMES and not root_parts.netloc:
                folder = Path(unquote(root_parts.path) if root_parts.scheme else root).resolve()
                if path.is_relative_to(folder):
                    return
    else:
        netloc = parts.netloc.lower()
        if scheme == "mlflow-artifacts" and netloc and netloc != urlsplit(settings.tracking_uri).netloc.lower():
            raise UntrustedModelError(
                f"model files at {uri!r}: mlflow-artifacts: may only name the tracking server "
                f"{settings.tracking_uri!r}, not {parts.netloc!r}"
            )
        if scheme == "mlflow-artifacts":
            netloc = ""
        segments = _segments(parts.path, uri)
        for root in roots:
            root_parts = urlsplit(root)
            if root_parts.scheme.lower() != scheme or root_parts.netloc.lower() != netloc:
                continue
            base = _segments(root_parts.path, root)
            if segments[: len(base)] == base:
                return
    raise UntrustedModelError(
        f"model files at {uri!r} are outside the registry's artifact store {roots} (MLOPS_MODEL_ARTIFACT_ROOTS): "
        "refusing to fetch or load them"
    )


def storage_location(uri: str) -> str:
    """Where MLflow would really fetch ``uri`` from (``models:/`` and ``runs:/`` resolved through the
    configured tracking server), so that the check sees the same location as the download."""
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

    for _ in range(4):  # a models:/ URI may name a version whose source is another models:/ URI
        scheme = urlsplit(uri).scheme.lower()
        if scheme not in _INDIRECT_SCHEMES:
            return uri
        repository: Any = ModelsArtifactRepository if scheme == "models" else RunsArtifactRepository
        uri = str(repository.get_underlying_uri(uri))
    raise UntrustedModelError(f"model location {uri!r} still points to another model after 4 steps")


def fetch(settings: Settings, uri: str) -> Path:
    """A private local copy of the bundle at ``uri``, once its location passes :func:`check_location`.

    It lives in a temporary folder of its own (:func:`discard` removes it). A served model keeps it:
    loading puts the bundle's ``code/`` folder on ``sys.path`` for imports still to come.
    """
    import mlflow

    require_configured(settings)  # models:/ and runs:/ URIs resolve through MLflow's process-wide registry
    location = storage_location(uri)
    check_location(settings, location)
    target = tempfile.mkdtemp(prefix="bundle-")
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=target))


def seal(settings: Settings, model_uri: str) -> tuple[Path, str]:
    """Registration's side: the checked local copy of ``model_uri`` and the digest to record."""
    local = fetch(settings, model_uri)
    return local, bundle_digest(local)


def verified_copy(settings: Settings, name: str, version: str) -> Path:
    """A local copy of ``name`` version ``version`` whose location and digest check out.

    Raises :class:`UntrustedModelError` (before anything is fetched when the location is outside the
    store or no digest was recorded).
    """
    require_configured(settings)
    mlflow_client = client(settings)
    expected = mlflow_client.get_model_version(name, version).tags.get(BUNDLE_DIGEST_TAG)
    location = storage_location(mlflow_client.get_model_version_download_uri(name, version))
    check_location(settings, location)
    if not expected:
        raise UntrustedModelError(
            f"{name} v{version} carries no {BUNDLE_DIGEST_TAG} tag: it was not registered through "
            "model_registry (python -m model_registry register records it)"
        )
    local = fetch(settings, location)
    actual = bundle_digest(local)
    if actual != expected:
        discard(local)  # the refused files go with the refusal: nothing loads them, nothing keeps them
        raise UntrustedModelError(
            f"{name} v{version}: the files at {location} changed since registration "
            f"(sha256 {actual[:16]}..., registered {expected[:16]}...)"
        )
    return local


def load_trusted(settings: Settings, name: str, version: str) -> Any:
    """Load a registry version (a PyFunc model) from its verified copy: the only way the platform
    loads a version. The copy stays for the life of the process; a long-lived user that swaps models
    takes :func:`load_trusted_copy` instead, to remove each copy once its model is let go."""
    return load_trusted_copy(settings, name, version)[0]


def load_trusted_copy(settings: Settings, name: str, version: str) -> tuple[Any, Path]:
    """:func:`load_trusted`'s model and the local copy it was loaded from, which stays while the
    model is used (its ``code/`` is on ``sys.path``) and goes with :func:`discard`. A version that
    does not load leaves no copy behind."""
    import mlflow

    local = verified_copy(settings, name, str(version))
    log.info("%s v%s: location and sha256 verified", name, version)
    try:
        return mlflow.pyfunc.load_model(str(local)), local
    except BaseException:
        discard(local)
        raise


@contextlib.contextmanager
def trusted_model(settings: Settings, name: str, version: str) -> Iterator[Any]:
    """:func:`load_trusted` for a model used only inside the block (a gate, a backtest, a warm-up):
    its copy is removed afterwards, so batch workers do not fill their disk with bundles."""
    import mlflow

    local = verified_copy(settings, name, str(version))
    try:
        yield mlflow.pyfunc.load_model(str(local))
    finally:
        discard(local)


def discard(local: Path) -> None:
    """Remove a copy made by :func:`fetch` (its private temporary folder)."""
    shutil.rmtree(local.parent, ignore_errors=True)
