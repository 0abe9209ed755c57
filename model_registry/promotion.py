"""Moving the ``champion`` alias: promotion after the gates, and rollback to the champion before.

MLflow moves one alias per call and has no transactions, so every move of ``champion`` and
``previous`` happens under one lock per registered model (a file lock on one machine, a Redis lock
across a cluster). Inside it, a promotion re-checks that the champion is still the one its gate
compared against: two runs that passed their gates at the same time cannot both win, and a
version that beat an outdated champion is refused instead of promoted.

An alias always names exactly one version, so there are never two champions; the order of the
moves (``previous`` first, then ``champion``) means a crash between them leaves the old champion
serving and a retry finishes the job.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from core.settings import Settings
from model_registry.outcomes import AliasMove
from model_registry.provenance import trusted_model
from model_registry.registry import alias_version, champion_version, warm
from model_registry.tracking import CHAMPION, PREVIOUS, client

log = logging.getLogger(__name__)

# Version tags written by moves of the champion alias.
PREVIOUS_CHAMPION_TAG = "previous_champion"
PROMOTED_AT_TAG = "promoted_at"
PROMOTION_REASON_TAG = "promotion_reason"
ROLLED_BACK_AT_TAG = "rolled_back_at"
ROLLBACK_REASON_TAG = "rollback_reason"
ANY_CHAMPION = "*"


class PromotionConflictError(RuntimeError):
    """The champion changed after the gate compared the challenger with it."""


class RollbackError(LookupError):
    """There is nothing to roll back to."""


class LockTimeoutError(TimeoutError):
    """Another promotion or rollback of the same model holds the lock too long."""


@contextlib.contextmanager
def registry_lock(settings: Settings, model_name: str) -> Iterator[None]:
    """Hold the model's alias lock for the block (or fail after the configured timeout)."""
    timeout = settings.promotion_lock_timeout_seconds
    if settings.promotion_lock == "redis":
        import redis

        connection = redis.Redis(
            host=settings.redis_host,
            port=settings.redis_port,
            password=settings.redis_password.get_secret_value() if settings.redis_password else None,
            ssl=settings.redis_ssl,
            socket_timeout=10,
        )
        # The lease outlives any honest move; a holder that died frees it when it expires.
        lock = connection.lock(f"mlops:registry-lock:{model_name}", timeout=300, blocking_timeout=timeout)
        if not lock.acquire():
            raise LockTimeoutError(f"registry lock of {model_name} still held after {timeout:.0f}s")
        try:
            yield
        finally:
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()
        return
    path = settings.home / "locks" / f"registry-{model_name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise LockTimeoutError(f"registry lock of {model_name} still held after {timeout:.0f}s") from exc
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def previous_version(settings: Settings, model_name: str) -> str | None:
    return alias_version(settings, model_name, PREVIOUS)


def promote_version(
    settings: Settings, model_name: str, version: str, reason: str, expected_champion: str | None = ANY_CHAMPION
) -> str | None:
    """Make ``version`` the champion; the champion it replaces keeps alias ``previous``.

    ``expected_champion`` is the champion the gate compared with (None: there was none); if another
    promotion moved the alias since, :class:`PromotionConflictError` is raised and nothing moves.
    Promoting the current champion again changes nothing, so a retried task is harmless. Returns
    the champion before the call.
    """
    version = str(version)
    mlflow_client = client(settings)
    with registry_lock(settings, model_name):
        current = champion_version(settings, model_name)
        if current == version:
            log.info("%s v%s is already champion", model_name, version)
            return current
        if expected_champion != ANY_CHAMPION and current != expected_champion:
            raise PromotionConflictError(
                f"{model_name} v{version} was gated against champion {expected_champion or 'none'}, but the "
                f"champion is now {current or 'none'}: run the gates again before promoting"
            )
        # Tags first: if the moves below fail, the version says what was intended and a retry repeats it.
        tags = {
            PREVIOUS_CHAMPION_TAG: current or "",
            PROMOTED_AT_TAG: datetime.now(UTC).isoformat(timespec="seconds"),
            PROMOTION_REASON_TAG: reason,
        }
        for key, value in tags.items():
            mlflow_client.set_model_version_tag(model_name, version, key, value)
        if current is not None:
            mlflow_client.set_registered_model_alias(model_name, PREVIOUS, current)
        mlflow_client.set_registered_model_alias(model_name, CHAMPION, version)
    log.info("%s v%s is champion (was %s): %s", model_name, version, current, reason)
    return current


def rollback(settings: Settings, model_name: str, reason: str, to_version: str | None = None) -> AliasMove:
    """Move ``champion`` back to ``previous`` (or to ``to_version``), after proving it still loads.

    ``previous`` then steps one further back (the restored version's own predecessor), so repeated
    rollbacks walk back through the promotion history; the version rolled away from is tagged with
    when and why. Rolling back to an explicit version that is already champion changes nothing.
    """
    if not reason.strip():
        raise ValueError("a rollback needs a reason")
    mlflow_client = client(settings)
    with registry_lock(settings, model_name):
        current = champion_version(settings, model_name)
        if current is None:
            raise RollbackError(f"{model_name} has no champion to roll back")
        target = str(to_version) if to_version else previous_version(settings, model_name)
        if target is None:
            raise RollbackError(f"{model_name} has no previous champion to roll back to (champion is v{current})")
        if target == current:
            if to_version:  # asked for exactly this: a retried rollback finds its work done
                log.info("%s v%s is already champion", model_name, target)
                return AliasMove(
                    model=model_name,
                    champion=target,
                    replaced=None,
                    previous=previous_version(settings, model_name),
                    reason=reason,
                )
            raise RollbackError(f"{model_name} v{target} is already the champion")
        with trusted_model(settings, model_name, target) as model:
            warm(model, f"{model_name} v{target}")
        before = mlflow_client.get_model_version(model_name, target).tags.get(PREVIOUS_CHAMPION_TAG) or None
        if before in (current, target):
            before = None
        now = datetime.now(UTC).isoformat(timespec="seconds")
        mlflow_client.set_model_version_tag(model_name, current, ROLLED_BACK_AT_TAG, now)
        mlflow_client.set_model_version_tag(model_name, current, ROLLBACK_REASON_TAG, reason)
        mlflow_client.set_model_version_tag(model_name, target, PROMOTED_AT_TAG, now)
        restored = f"rollback from v{current}: {reason}"
        mlflow_client.set_model_version_tag(model_name, target, PROMOTION_REASON_TAG, restored)
        mlflow_client.set_registered_model_alias(model_name, CHAMPION, target)
        if before is not None:
            mlflow_client.set_registered_model_alias(model_name, PREVIOUS, before)
        else:
            mlflow_client.delete_registered_model_alias(model_name, PREVIOUS)
    log.warning("%s rolled back from v%s to v%s: %s", model_name, current, target, reason)
    return AliasMove(model=model_name, champion=target, replaced=current, previous=before, reason=reason)
