"""The dataset config and settings references: every key of a dataset YAML, every ``MLOPS_*`` variable.

Both are tables of a pydantic model's fields (:mod:`infra.docs.fields`), generated from
:class:`core.dataset.DatasetConfig` and :class:`core.settings.Settings` so that a key added to the code
is documented the next time the site is built.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from infra.docs.environment import platform_environment_cleared
from infra.docs.fields import constraints, default_of, nested_model, shown, source_comments, type_cell
from infra.docs.markdown import code, table


def model_sections(model: type[BaseModel], prefix: str = "") -> list[tuple[str, type[BaseModel]]]:
    """``(key path, model)`` of a model and every model nested in it, depth first, in field order."""
    sections = [(prefix, model)]
    for name, field in model.model_fields.items():
        inner = nested_model(field.annotation)
        if inner is not None:
            sections += model_sections(inner, f"{prefix}.{name}" if prefix else name)
    return sections


def anchor(path: str) -> str:
    """A section's anchor from its key path: links to a nested model's keys land on its section."""
    return path.replace(".", "-").replace("_", "-") or "top-level"


def dataset_config_page() -> str:
    """``reference/dataset-config.md``: a section per model, top level first, a row per key.

    The platform's packages are imported when a page is made, not when the hook is loaded: MkDocs puts
    ``sys.path`` back after loading it, and the hook's entry points put this checkout on it again.
    """
    from core.dataset import DatasetConfig

    sections = model_sections(DatasetConfig)
    path_of = {model: path for path, model in reversed(sections)}

    def link(model: type[BaseModel]) -> str:
        return f"[mapping: `{path_of[model]}`](#{anchor(path_of[model])})"

    out = [
        "# Dataset config reference",
        "",
        "Every key of a dataset YAML file, generated when the site is built from the pydantic model "
        "`core.dataset.DatasetConfig` and the models nested in it (`core/dataset.py`): what is listed here is "
        "what the platform reads, and a key that is not listed is refused (`extra = forbid`). Durations are ISO "
        "8601 (`PT1H`, `P2D`); relative paths are resolved against the YAML file's folder. The example is "
        "`configs/datasets/ett.yaml`; the [datasets guide](../datasets.md) says how a dataset runs.",
    ]
    for path, model in sections:
        title = f"`{path}`" if path else "Top level"
        out += ["", f"## {title} {{#{anchor(path)}}}", ""]
        doc = inspect.getdoc(model)
        if doc and model.__doc__ and "__doc__" in model.__dict__:
            out += [" ".join(doc.split()), ""]
        comments = source_comments(model)
        rows = []
        for name, field in model.model_fields.items():
            key = f"{path}.{name}" if path else name
            inner = nested_model(field.annotation)
            if field.is_required():
                default = "required"
            elif inner is not None and field.annotation is inner:
                default = "each key's default"
            else:
                default = shown(default_of(field), field.annotation, none="`null`")
            description = field.description or comments.get(name, "")
            if field.exclude:
                description = f"Set when the file is loaded, not read from it. {description}"
            rows.append([code(key), type_cell(field.annotation, link), constraints(field), default, description])
        out.append(table(["key", "type", "constraints", "default", "description"], rows))
    return "\n".join(out) + "\n"


def settings_page() -> str:
    """``reference/settings.md``: a row per variable, with the ``local`` profile's default and each other
    profile's where it differs (a profile exists to change defaults, so the differences are the point)."""
    from core.settings import Profile, Settings

    prefix = str(Settings.model_config.get("env_prefix", ""))
    home = "/mlops-home-of-the-docs"
    with platform_environment_cleared():
        # _env_file=None: a developer's .env does not reach the pages either.
        by_profile = {profile: Settings(_env_file=None, profile=profile, home=Path(home)) for profile in Profile}  # type: ignore[call-arg]
    comments = source_comments(Settings)

    def value(profile: Profile, name: str, field: FieldInfo) -> str:
        if name == "home":
            return shown(field.default, field.annotation)
        return shown(getattr(by_profile[profile], name), field.annotation).replace(home, "<home>")

    rows = []
    for name, field in Settings.model_fields.items():
        local = value(Profile.LOCAL, name, field)
        others = [f"{profile.value}: {value(profile, name, field)}" for profile in Profile if profile != Profile.LOCAL]
        others = [text for text in others if text.split(": ", 1)[1] != local and name != "profile"]
        default = "<br>".join([local, *others])
        description = field.description or comments.get(name, "")
        rows.append([code(prefix + name.upper()), type_cell(field.annotation), default, description])
    profiles = ", ".join(f"`{profile.value}`" for profile in Profile)
    return (
        "\n".join(
            [
                "# Settings reference",
                "",
                "Every setting, generated when the site is built from `core.settings.Settings` (`core/settings.py`). "
                f"Each is read from the environment variable named here, or from `.env` (see `.env.example`). The "
                f"profile (`{prefix}PROFILE`: {profiles}) fills in the defaults of a kind of deployment; the "
                "default column gives the `local` profile's value, then each profile's where it differs "
                "(`<home>`: `MLOPS_HOME`, `<project>`: the checkout). A variable that is set always beats the "
                "profile's default. Lists and mappings are JSON (`MLOPS_SOURCE_BUCKETS='[\"raw\"]'`); secrets "
                "never appear in a log. [Settings and profiles](../operations/settings.md) explains them.",
                "",
                table(["variable", "type", "default", "description"], rows),
            ]
        )
        + "\n"
    )
