"""The configuration reference, written from the settings models themselves so it cannot drift.

Each section's keys come from its pydantic model: the key, its type, its default, and its meaning
(the ``#:`` comment above the field in the model's source — the habit of every settings module
here — or the field's ``description``). ``volna config reference`` prints it;
``docs/configuration.md`` is that output, and ``tests/test_config_reference.py`` fails when the
two differ, or when ``ops/volna.example.toml`` lacks a key or does not validate.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


@dataclass(frozen=True, slots=True)
class Key:
    """One leaf key: ``redis.url``, ``channels.<channel>.enabled``, ``...accounts[].name``."""

    path: str
    type: str
    default: str
    meaning: str


_FIELD = re.compile(r"^    (\w+)\s*:")


@cache
def doc_comments(model: type[BaseModel]) -> dict[str, str]:
    """``field → text`` of the ``#:`` comment lines right above each field in the class source
    (as Sphinx's autodoc reads them), for the model and its bases."""
    out: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            lines = inspect.getsource(cls).splitlines()
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        for line in lines:
            stripped = line.strip()
            if stripped.startswith("#:"):
                pending.append(stripped[2:].strip())
                continue
            match = _FIELD.match(line)
            if match and pending:
                out[match.group(1)] = " ".join(pending)
            pending = []
    return out


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None)) + (
            " (optional)" if type(None) in args else "")
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"table of {_type_name(args[1])}"
    if isinstance(tp, type) and issubclass(tp, Enum):
        return " | ".join(repr(m.value) for m in tp)
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "none")


def _default(field: FieldInfo) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
    else:
        return "(required)"
    return _value(value)


def _value(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Enum):
        value = value.value
    if value in ("", None, [], {}):
        return {"": '""', None: "none"}.get(value, str(value)) if not isinstance(value, list | dict) else str(value)
    return str(value)


def _models_in(tp: Any) -> tuple[str, type[BaseModel]] | None:
    """``("", M)`` for a model field, ``(".<name>", M)`` for a table of models, ``("[]", M)`` for a
    list of them."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "", tp
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            found = _models_in(arg)
            if found is not None:
                return found
    if origin is dict and args:
        inner = _models_in(args[1])
        if inner is not None:
            key = args[0]
            name = key.__name__.lower() if isinstance(key, type) and issubclass(key, Enum) else "name"
            return f".<{name}>{inner[0]}", inner[1]
    if origin in (list, tuple) and args:
        inner = _models_in(args[0])
        if inner is not None:
            return "[]" + inner[0], inner[1]
    return None


def keys(model: type[BaseModel], prefix: str = "", defaults: BaseModel | None = None) -> Iterator[Key]:
    """Every leaf key of ``model``, depth first, in the model's field order. ``defaults``: the
    instance a parent gives as this section's default (its values are the keys' defaults)."""
    docs = doc_comments(model)
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}{key}"
        nested = _models_in(field.annotation)
        if nested is not None and nested[1] is not model:
            suffix, inner = nested
            instance = getattr(defaults, name, None) if defaults is not None else field.default
            yield from keys(inner, f"{path}{suffix}.", instance if isinstance(instance, BaseModel) and not suffix
                            else None)
            continue
        meaning = docs.get(name) or field.description or ""
        default = _value(getattr(defaults, name)) if defaults is not None else _default(field)
        yield Key(path, _type_name(field.annotation), default, meaning)


def reference(sections: list[tuple[str, str, type[BaseModel]]]) -> str:
    """The Markdown reference: ``(title, key prefix, model)`` per section."""
    out = ["# Configuration reference", "",
           "Generated from the settings models by `volna config reference`: do not edit by hand.",
           "Every key can be set in `volna.toml` (or the file given with `--config`) and overridden from",
           "the environment as `VOLNA_<SECTION>__<KEY>` (`VOLNA_REDIS__URL`,",
           "`VOLNA_DISPATCHER__BATCH_SIZE`). A complete example is `ops/volna.example.toml`. `<name>`",
           "stands for a name you choose, `<channel>` for ivr, sms, viber or whatsapp; `[]` marks an",
           "array of tables (`[[…]]` in TOML).", ""]
    for title, prefix, model in sections:
        out += [f"## {title}", ""]
        doc = inspect.getdoc(model)
        if doc and not doc.startswith(model.__name__ + "("):
            out += [doc.splitlines()[0], ""]
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for k in keys(model, prefix):
            cells = [f"`{k.path}`", k.type.replace("|", "\\|"), f"`{k.default}`".replace("|", "\\|"),
                     k.meaning.replace("|", "\\|")]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)
