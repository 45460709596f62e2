"""The configuration reference, written from the settings models themselves so it cannot drift.

Each section's keys come from its pydantic model: the key, its type, its default (as it would be
written in TOML), and its meaning (the ``#:`` comment above the field in the model's source — the
habit of every settings module here — or the field's ``description``). ``volna config reference``
prints it; ``docs/configuration.md`` is that output, and ``tests/test_config_reference.py`` fails
when the two differ, when a key has no meaning, or when ``ops/volna.example.toml`` lacks a key or
does not validate.

A key is written as a path: ``redis.url``; ``<name>`` stands for a table key you choose
(``pacing.<name>.rate_per_s``), ``<channel>`` for a channel, ``[]`` for an array of tables
(``channels.sms.connector.accounts[].host``). A dict field may name its keys with
``json_schema_extra={"keys": ["<campaign>", …]}``. :func:`set_paths` gives the same paths for the
keys a TOML document sets, so the two can be compared.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import time
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


@dataclass(frozen=True, slots=True)
class Key:
    """One leaf key: ``redis.url``, ``channels.<channel>.enabled``, ``...accounts[].name``."""

    path: str
    type: str
    default: str
    meaning: str


@dataclass(frozen=True, slots=True)
class Section:
    """One table of the reference: a TOML table (``[redis]``) and its keys."""

    title: str
    intro: str
    keys: tuple[Key, ...]


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


def _markdown(text: str) -> str:
    """Sphinx's ``literal`` and :role:`x` as Markdown's `literal`."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def intro(model: type[BaseModel]) -> str:
    """The first paragraph of the model's own docstring (not one it inherits), on one line."""
    doc = model.__dict__.get("__doc__")
    if not doc:
        return ""
    first = inspect.cleandoc(doc).split("\n\n")[0]
    return _markdown(" ".join(first.split()))


def _optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` → ``(X, True)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) != len(typing.get_args(tp))
    return tp, False


def _type_name(tp: Any) -> str:
    inner, optional = _optional(tp)
    if optional:
        return _type_name(inner)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " \\| ".join(_toml(a) for a in args)
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"table of {_type_name(args[1])}" if args and args[1] is not Any else "table"
    if tp is Any:
        return "table"
    if isinstance(tp, type):
        if issubclass(tp, Enum):
            return " \\| ".join(_toml(m.value) for m in tp)
        if issubclass(tp, SecretStr):
            return "secret string"
        if issubclass(tp, Path):
            return "path"
        if issubclass(tp, time):
            return "time (HH:MM)"
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(tp.__name__, tp.__name__)
    return str(tp)


def _toml(value: Any) -> str:
    """``value`` as TOML writes it (``true``, ``"08:00"``, ``[429, 500]``)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, time):
        return json.dumps(value.strftime("%H:%M" if not value.second else "%H:%M:%S"))
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}" if value else "{}"
    return str(value)


def _default(field: FieldInfo) -> str:
    if field.default is not PydanticUndefined:
        return _toml(field.default)
    if field.default_factory is not None:
        try:
            return _toml(field.default_factory())  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
    return "(required)"


def _model(tp: Any) -> type[BaseModel] | None:
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _holds_model(tp: Any) -> bool:
    """Whether ``tp`` is a model, or a table or list that ends in models."""
    tp, _ = _optional(tp)
    if _model(tp) is not None:
        return True
    args = typing.get_args(tp)
    if typing.get_origin(tp) is dict and args:
        return _holds_model(args[1])
    if typing.get_origin(tp) in (list, tuple) and args:
        return _holds_model(args[0])
    return False


def _placeholder(key_type: Any, names: list[str]) -> str:
    """The name a table's key is written as: the field's own (``keys``), else ``<channel>`` for
    an enum of channels, else ``<name>``."""
    if names:
        return names.pop(0)
    if isinstance(key_type, type) and issubclass(key_type, Enum):
        return f"<{key_type.__name__.lower()}>"
    return "<name>"


def _key_names(field: FieldInfo) -> list[str]:
    extra = field.json_schema_extra
    return list(extra.get("keys", [])) if isinstance(extra, dict) else []  # type: ignore[arg-type]


def _field_key(name: str, field: FieldInfo) -> str:
    return field.alias or name


def keys(model: type[BaseModel], prefix: str = "", defaults: BaseModel | None = None, lead: str = "") -> Iterator[Key]:
    """Every leaf key of ``model``, depth first, in the model's field order. ``defaults``: the
    instance a parent gives as this section's default (its values are the keys' defaults);
    ``lead``: the parent field's meaning, put before each key's own."""
    docs = doc_comments(model)
    for name, field in model.model_fields.items():
        path = f"{prefix}{_field_key(name, field)}"
        meaning = _joined(lead, _markdown(docs.get(name) or field.description or ""))
        if _holds_model(field.annotation):
            instance = getattr(defaults, name, None) if defaults is not None else field.default
            yield from _nested(field.annotation, path, _key_names(field),
                               instance if isinstance(instance, BaseModel) else None, meaning)
            continue
        default = _toml(getattr(defaults, name)) if defaults is not None else _default(field)
        yield Key(path, _type_name(field.annotation), default, meaning)


def _joined(lead: str, own: str) -> str:
    """``"TLS to the SMSC:"`` + ``"Connect over TLS."`` → ``"TLS to the SMSC: connect over TLS."``"""
    if lead.endswith(":") and own[:2].istitle():
        own = own[0].lower() + own[1:]
    return " ".join(m for m in (lead, own) if m)


def _nested(tp: Any, path: str, names: list[str], defaults: BaseModel | None, lead: str = "") -> Iterator[Key]:
    tp, _ = _optional(tp)
    model = _model(tp)
    if model is not None:
        yield from keys(model, f"{path}.", defaults, lead)
        return
    args = typing.get_args(tp)
    if typing.get_origin(tp) is dict:
        yield from _nested(args[1], f"{path}.{_placeholder(args[0], names)}", names, None, lead)
    else:
        yield from _nested(args[0], f"{path}[]", names, None, lead)


def set_paths(model: type[BaseModel], data: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """The paths (as :func:`keys` writes them) of the leaf keys ``data`` sets for ``model``; a key
    the model does not have is given as it is written (validation refuses it)."""
    by_key = {_field_key(name, f): f for name, f in model.model_fields.items()}
    for key, value in data.items():
        path = f"{prefix}{key}"
        field = by_key.get(key)
        if field is None or not _holds_model(field.annotation):
            yield path
            continue
        yield from _set_nested(field.annotation, value, path, _key_names(field))


def _set_nested(tp: Any, value: Any, path: str, names: list[str]) -> Iterator[str]:
    tp, _ = _optional(tp)
    model = _model(tp)
    args = typing.get_args(tp)
    if model is not None and isinstance(value, Mapping):
        yield from set_paths(model, value, f"{path}.")
    elif model is None and typing.get_origin(tp) is dict and isinstance(value, Mapping):
        placeholder = _placeholder(args[0], names)
        for item in value.values():
            yield from _set_nested(args[1], item, f"{path}.{placeholder}", list(names))
    elif model is None and isinstance(value, list):
        for item in value:
            yield from _set_nested(args[0], item, f"{path}[]", list(names))
    else:
        yield path


def section(title: str, prefix: str, model: type[BaseModel], text: str = "") -> Section:
    """The section of ``model``'s keys under ``prefix``; ``text`` (else the model's docstring)
    introduces it."""
    return Section(title, text or intro(model), tuple(keys(model, prefix)))


def settings_sections(model: type[BaseModel]) -> list[Section]:
    """The top-level settings model as sections: its plain keys first, then one per table."""
    docs = doc_comments(model)
    every = {k.path: k for k in keys(model)}
    plain: list[Key] = []
    tables: list[Section] = []
    for name, field in model.model_fields.items():
        key = _field_key(name, field)
        if not _holds_model(field.annotation):
            plain.append(every[key])
            continue
        found = tuple(_nested(field.annotation, key, _key_names(field),
                              field.default if isinstance(field.default, BaseModel) else None))
        table, inner, names = key, _optional(field.annotation)[0], _key_names(field)
        while _model(inner) is None:  # a table of tables: [pacing.<name>], [channels.<channel>]
            args = typing.get_args(inner)
            if typing.get_origin(inner) is dict:
                table += f".{_placeholder(args[0], names)}"
            inner = _optional(args[-1])[0]
        text = intro(inner) or _markdown(docs.get(name, ""))
        tables.append(Section(f"[{table}]", text, found))
    return [Section("Top level", "Keys outside any table.", tuple(plain)), *tables]


def reference(sections: list[Section]) -> str:
    """The Markdown reference."""
    out = ["# Configuration reference", "",
           "Generated from the settings models by `volna config reference`: do not edit by hand",
           "(`tests/test_config_reference.py` fails when this page and the models differ). Every key",
           "can be set in `volna.toml` (or the file given with `--config`) and overridden from the",
           "environment as `VOLNA_<SECTION>__<KEY>` (`VOLNA_REDIS__URL`, `VOLNA_DISPATCHER__BATCH_SIZE`).",
           "A complete example with every key is [`ops/volna.example.toml`](../ops/volna.example.toml);",
           "`volna config check FILE` validates a file as `volna run` would read it.", "",
           "`<name>` stands for a name you choose, `<channel>` for `ivr`, `sms`, `viber` or",
           "`whatsapp`; `[]` marks an array of tables (`[[…]]` in TOML). Defaults are written as in",
           "TOML; `unset` means the key is absent by default, `(required)` that it must be given.", ""]
    for sec in sections:
        out += [f"## `{sec.title}`" if sec.title.startswith("[") else f"## {sec.title}", ""]
        if sec.intro:
            out += [sec.intro, ""]
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for k in sec.keys:
            # A `|` inside a cell ends it, code spans included; the type is escaped already.
            path, default, meaning = (c.replace("|", "\\|") for c in (f"`{k.path}`", f"`{k.default}`", k.meaning))
            out.append(f"| {path} | {k.type} | {default} | {meaning} |")
        out.append("")
    return "\n".join(out)
