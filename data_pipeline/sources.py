"""Reading raw files from where a dataset config says they are: local paths or ``s3://`` URIs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from configs.settings import Settings


class SourceError(RuntimeError):
    """A raw source could not be read (missing file, unreachable bucket, unknown scheme)."""


def read_bytes(uri: str, settings: Settings) -> bytes:
    """Return the raw bytes behind ``uri``; S3 goes through boto3 with the configured endpoint."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme == "file" else uri)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise SourceError(f"source file not found: {path}") from exc
    if parsed.scheme == "s3":
        return _read_s3(parsed.netloc, parsed.path.lstrip("/"), settings)
    raise SourceError(f"unsupported source scheme {parsed.scheme!r} in {uri!r} (use a path or s3://)")


def _read_s3(bucket: str, key: str, settings: Settings) -> bytes:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3",
        config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5),
        **settings.boto3_client_kwargs(),
    )
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        return bytes(body.read())
    except (BotoCoreError, ClientError) as exc:
        raise SourceError(f"cannot read s3://{bucket}/{key}: {exc}") from exc
