"""Roll each dataset's champion back: ``rollback_<dataset>_champion``, triggered by hand only.

The champion alias moves back to the version it replaced (alias ``previous``), or to the version
given in the form, after that version is loaded and warmed; the serving app follows the alias.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from configs.orchestration import NO_CONTROL_CHARACTERS, dag_arguments, dags_for_each_dataset
from configs.settings import get_settings


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
            """Resolved once, so that a retried move cannot walk back a second step."""
            from configs.dataset import DatasetConfig
            from model_registry.promotion import RollbackError, previous_version

            settings = get_settings()
            model_name = settings.model_name(DatasetConfig.from_yaml(config).name)
            chosen = get_current_context()["params"].get("to_version") or previous_version(settings, model_name)
            if chosen is None:
                raise RollbackError(f"{model_name} has no previous champion to roll back to")
            return str(chosen)

        @task
        def move_champion(version: str) -> dict[str, Any]:
            from configs.dataset import DatasetConfig
            from model_registry.promotion import rollback as roll_back

            settings = get_settings()
            model_name = settings.model_name(DatasetConfig.from_yaml(config).name)
            return roll_back(settings, model_name, get_current_context()["params"]["reason"], version).as_dict()

        move_champion(choose_version())

    return rollback()


globals().update(dags_for_each_dataset(build))
