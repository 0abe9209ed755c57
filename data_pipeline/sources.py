"""Reading raw files from where a dataset config says they are: local paths or ``s3://`` URIs."""

from __future__ import annotations

from typing import Any

from core.objects import s3_client
from core.settings import Settings
from core.source_policy import check


class SourceError(RuntimeError):
    """A raw source could not be read (missing file, unreachable bucket)."""


def read_bytes(uri: str, settings: Settings) -> bytes:
    """Return the raw bytes behind ``uri``; S3 goes through boto3 with the configured endpoint.

    The source policy sees ``uri`` first (it raises ``SourcePolicyError``), and the read goes to the
    path the policy resolved, not to ``uri`` parsed a second time: what was checked is what is read.
    """
    source = check(uri, settings)
    if source.path is not None:
        try:
            return source.path.read_bytes()
        except FileNotFoundError as exc:
            raise SourceError(f"source file not found: {source.path}") from exc
    assert source.bucket is not None
    assert source.key is not None
    return _read_s3(source.bucket, source.key, settings)


def readable(uri: str, settings: Settings) -> str | bytes:
    """What a reader opens for ``uri``: a local file's path (read a chunk at a time where it lies),
    or an object's bytes. The source policy sees ``uri`` first, as in :func:`read_bytes`."""
    source = check(uri, settings)
    if source.path is not None:
        if not source.path.is_file():
            raise SourceError(f"source file not found: {source.path}")
        return str(source.path)
    return read_bytes(uri, settings)


def _read_s3(bucket: str, key: str, settings: Settings) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    max_attempts = settings.s3_max_attempts
    client = s3_client(settings)
    sent = 0

    def count_attempt(**_: Any) -> None:
        nonlocal sent
        sent += 1

    # Botocore retries on its own; counting its sends lets the error say whether the store was
    # unreachable after every attempt or refused the request outright (a missing key is not retried).
    client.meta.events.register("before-send.s3.GetObject", count_attempt)
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        return bytes(body.read())
    except (BotoCoreError, ClientError) as exc:
        raise SourceError(
            f"cannot read s3://{bucket}/{key} from {client.meta.endpoint_url}: gave up after {sent} "
            f"attempt{'' if sent == 1 else 's'} (at most {max_attempts}, MLOPS_S3_MAX_ATTEMPTS): {exc}"
        ) from exc
