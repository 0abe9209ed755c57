"""Which raw sources a dataset config may name: the policy every read goes through.

A dataset config is input from whoever may add a YAML file, and ingest runs with the platform's own
file-system rights and S3 credentials: without a policy, one line of YAML would land
``/etc/passwd``, a credentials file or the MLflow bucket as "raw data", or make the worker fetch an
internal URL. So a source is refused unless it is

* a local path (plain or ``file:///``, no host) that lies, once symlinks and ``..`` are resolved,
  under one of the allowed roots (``MLOPS_SOURCE_ROOTS``), or
* ``s3://<bucket>/<key>`` of a listed bucket (``MLOPS_SOURCE_BUCKETS``; none by default),

and its scheme is one of ``MLOPS_SOURCE_SCHEMES``. Every other scheme (``http(s)``, ``ftp``, ...) is
refused, whatever the settings say: nothing here can read it anyway, and a URL is where SSRF starts.

Checked when a config is loaded (a bad config fails before any task runs: the config walks its own
sources through :func:`parse` or :func:`check`, so this module knows URIs and settings, never the config)
and again right before each read, on the same resolved path that is then read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from core.settings import Settings

LOCAL = "file"
S3 = "s3"
# What the readers of data_pipeline.sources can read at all; the settings choose among these.
READABLE_SCHEMES = (LOCAL, S3)
# S3's bucket naming rules; also keeps credentials, ports and hosts out of the bucket part.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class SourcePolicyError(ValueError):
    """A source URI the policy refuses; the message names the URI and what would be allowed."""


@dataclass(frozen=True)
class Source:
    """Where a checked source is read: a resolved local path, or a bucket and key."""

    uri: str
    path: Path | None = None
    bucket: str | None = None
    key: str | None = None

    @property
    def scheme(self) -> str:
        return LOCAL if self.path is not None else S3


def parse(uri: str) -> Source:
    """The source ``uri`` names, refused when no setting could make it readable.

    Relative paths are resolved against the working directory: a config resolves its own against
    its folder first (:meth:`DatasetConfig.resolve_uri`).
    """
    if "\x00" in uri:
        raise SourcePolicyError(f"source {uri!r} holds a NUL byte")
    if "://" not in uri and ":" not in uri.split("/", 1)[0]:
        return Source(uri, path=Path(uri).resolve())
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in READABLE_SCHEMES:
        raise SourcePolicyError(
            f"source {uri!r}: scheme {scheme!r} is not allowed (only local paths and s3:// can be sources)"
        )
    if parts.query or parts.fragment:
        raise SourcePolicyError(f"source {uri!r}: a query or fragment is not allowed in a source URI")
    if scheme == LOCAL:
        if parts.netloc:
            raise SourcePolicyError(
                f"source {uri!r}: file:// URIs name a local path, never a host ({parts.netloc!r}); use file:///path"
            )
        return Source(uri, path=Path(unquote(parts.path)).resolve())
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not _BUCKET.match(bucket):
        raise SourcePolicyError(f"source {uri!r}: {bucket!r} is not an S3 bucket name (s3://<bucket>/<key>)")
    if not key or key.endswith("/") or any(segment in (".", "..") for segment in key.split("/")):
        raise SourcePolicyError(f"source {uri!r}: the key must name one object, without '.' or '..' segments")
    return Source(uri, bucket=bucket, key=key)


def allowed_roots(settings: Settings) -> list[Path]:
    """The folders local sources must lie under, resolved (a root that is a symlink counts as its target)."""
    return [Path(root).expanduser().resolve() for root in settings.allowed_source_roots]


def check(uri: str, settings: Settings) -> Source:
    """``uri`` parsed and held against the settings; raises :class:`SourcePolicyError` with the allowed set."""
    source = parse(uri)
    allowed = settings.source_schemes
    if source.scheme not in allowed:
        kind = "local" if source.scheme == LOCAL else "s3://"
        raise SourcePolicyError(
            f"source {uri!r}: {kind} sources are not allowed (MLOPS_SOURCE_SCHEMES={list(allowed)})"
        )
    if source.path is not None:
        roots = allowed_roots(settings)
        if not any(source.path.is_relative_to(root) for root in roots):
            raise SourcePolicyError(
                f"source {uri!r} resolves to {source.path}, outside the allowed source roots "
                f"{[str(r) for r in roots]} (MLOPS_SOURCE_ROOTS)"
            )
        return source
    buckets = settings.source_buckets
    if source.bucket not in buckets:
        listed = f"only {buckets}" if buckets else "none are"
        raise SourcePolicyError(
            f"source {uri!r}: bucket {source.bucket!r} is not allowed ({listed} allowed: MLOPS_SOURCE_BUCKETS)"
        )
    return source
