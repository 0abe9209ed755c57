"""A pydantic model's fields in words: their types, constraints, defaults and comments.

The dataset config and settings references are tables of fields; what a reader needs of a field is
spread over its annotation, its metadata, its default and the comments beside it in the source (the
models keep their explanations as comments, not ``description=``), so this gathers it.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import json
import textwrap
import tokenize
import types
import typing
from collections.abc import Callable
from datetime import date, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, TypeAdapter
from pydantic.fields import FieldInfo

from infra.docs.environment import ROOT
from infra.docs.markdown import code


def source_comments(cls: type) -> dict[str, str]:
    """The comments of a class's fields: the comment lines right above a field, or the one at its end.

    A lone comment of three words or fewer ("# MLflow.") heads a group of fields and describes none.
    """
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    comments = {
        token.start[0]: token.string.lstrip("#").strip()
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    found: dict[str, str] = {}
    classdef = ast.parse(source).body[0]
    assert isinstance(classdef, ast.ClassDef)
    for node in classdef.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        line = node.lineno - 1
        while line >= 1 and lines[line - 1].strip().startswith("#"):
            above.insert(0, comments[line])
            line -= 1
        if len(above) == 1 and len(above[0].split()) <= 3:
            above = []
        inline = [comments[n] for n in range(node.lineno, (node.end_lineno or node.lineno) + 1) if n in comments]
        text = " ".join(above) or " ".join(inline)
        if text:
            found[node.target.id] = text
    return found


def type_text(annotation: Any, link: Callable[[type[BaseModel]], str] | None = None) -> str:
    """A field's type as a reader writes it: ``list[int] | None``, ``"csv" | "parquet"``, a duration..."""
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return link(annotation) if link else annotation.__name__
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " | ".join(json.dumps(member.value) for member in annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(json.dumps(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_text(arg, link) for arg in args)
    if origin is typing.Annotated:
        return type_text(args[0], link)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_text(arg, link) for arg in args)}]"
    names = {timedelta: "duration", date: "date", Path: "path", SecretStr: "secret", Any: "any"}
    if annotation in names:
        return names[annotation]
    return getattr(annotation, "__name__", str(annotation))


def type_cell(annotation: Any, link: Callable[[type[BaseModel]], str] | None = None) -> str:
    """The type for a table: in a code span, except a nested model, which is a link."""
    text = type_text(annotation, link)
    return text if text.startswith("[") else code(text)


def constraints(field: FieldInfo) -> str:
    """A field's bounds, lengths and pattern in words: what the model refuses, which a type does not say."""
    words = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "length ≥", "max_length": "length ≤"}
    found = []
    for item in field.metadata:
        for attribute, word in words.items():
            value = getattr(item, attribute, None)
            if value is not None:
                found.append(f"{word} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern is not None:
            found.append(f"matches {code(pattern)}")
    return ", ".join(found)


def shown(value: Any, annotation: Any, none: str = "unset") -> str:
    """A default as it is written in YAML or an environment variable (durations in ISO 8601, lists as JSON)."""
    if value is None:
        return none
    with contextlib.suppress(Exception):
        value = TypeAdapter(annotation).dump_python(value, mode="json")
    if isinstance(value, SecretStr):
        value = "***"
    text = (value or '""') if isinstance(value, str) else json.dumps(value)
    text = text.replace(str(ROOT), "<project>")
    return code(text)


def default_of(field: FieldInfo) -> Any:
    """A field's default, a factory's called: the table shows the value a reader gets, not the factory."""
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (``Model`` or ``Model | None``): its keys get a section of their own."""
    candidates = [annotation, *typing.get_args(annotation)]
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
