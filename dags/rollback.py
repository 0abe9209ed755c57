"""Roll each dataset's champion back: ``rollback_<dataset>_champion``, triggered by hand only.

The champion alias moves back to the version it replaced (alias ``previous``), or to the version
given in the form, after that version is loaded and warmed; the serving app follows the alias.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from model_registry.outcomes import AliasMove
from orchestration.dags import NO_CONTROL_CHARACTERS, dag_arguments, dags_for_each_dataset
from orchestration.plan import scope


def build(name: str, config: Path) -> Any:
    @dag(
        **dag_arguments(
            f"rollback_{name}_champion",
            None,
            ["registry", "rollback", name],
            f"Move the `{name}` champion back to the previous version (or a chosen one). Config: `{config}`.",
        ),
        params={
            "reason": Param(
                type="string",
                minLength=3,
                maxLength=500,
                pattern=NO_CONTROL_CHARACTERS,
                title="Why roll back (recorded)",
            ),
            "to_version": Param(
                None,
                type=["null", "string"],
                maxLength=9,
                pattern=r"^[1-9][0-9]{0,8}(?![\s\S])",
                title="Version (empty: the previous champion)",
            ),
        },
    )
    def rollback() -> None:
        @task
        def choose_version() -> str:
            """The version to restore: the form's, else the previous champion. Chosen once, so that a
            retried move cannot walk back a second step."""
            from model_registry.promotion import RollbackError, previous_version

            run = scope(config)
            chosen = get_current_context()["params"].get("to_version") or previous_version(run.settings, run.model_name)
            if chosen is None:
                raise RollbackError(f"{run.model_name} has no previous champion to roll back to")
            return str(chosen)

        @task
        def move_champion(version: str) -> AliasMove:
            """Load and warm the chosen version, then move the champion alias to it, with the reason."""
            from model_registry.promotion import rollback

            run = scope(config)
            return rollback(run.settings, run.model_name, get_current_context()["params"]["reason"], version)

        move_champion(choose_version())

    return rollback()


globals().update(dags_for_each_dataset(build))
