"""``volna config reference|check``: the configuration reference, and a settings file checked.

* ``reference`` — every key of every table, its type, its default and its meaning, written from
  the settings models (:mod:`engine.config.reference`); ``docs/configuration.md`` is its output.
* ``check FILE [--files]`` — the file read as ``volna run`` reads it (the environment's
  ``VOLNA_…`` overrides included): the settings models, the contact windows and every channel's
  ``connector`` table (a disabled channel's too, when it has one); with ``--files``, every
  ``*_file`` the services would read is read too, as the user running the check (run it as the
  services' user): the settings' and the enabled channels'.
  A problem is one line naming the file and the key, exit 2; nothing is connected to.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from engine.cli.common import Subparsers
from engine.config.reference import Section, reference, section, settings_sections
from engine.config.settings import Settings, load_settings
from engine.domain.outcomes import Channel
from engine.errors import ConfigError

#: What each channel's connector table is, for the reference.
_CONNECTORS = {
    Channel.IVR: "IVR robocalls through Asterisk's AMI (docs/ivr.md).",
    Channel.SMS: "SMS over SMPP 3.4 (docs/sms.md).",
    Channel.VIBER: "Viber through a partner's HTTP API (docs/messengers.md).",
    Channel.WHATSAPP: "WhatsApp through Meta's Cloud API (docs/messengers.md).",
}


def sections() -> list[Section]:
    """The reference's sections: the engine's settings, then each channel's connector."""
    from connectors.registry import settings_model

    out = settings_sections(Settings)
    for channel, text in _CONNECTORS.items():
        model = settings_model(channel)
        prefix = f"channels.{channel.value}.connector"
        out.append(section(f"[{prefix}]", f"{prefix}.", model, text))
    return out


def check(file: Path, *, files: bool = False) -> Settings:
    """``file`` as the engine would run with it, or a :class:`ConfigError` naming file and key;
    with ``files``, every ``*_file`` it names must be readable and not empty."""
    from connectors.registry import check_connector
    from engine.calendar.windows import WindowCalendar

    if not file.is_file():
        raise ConfigError(f"{file}: no such file")
    settings = load_settings(file)
    sections: list[tuple[str, BaseModel]] = [("", settings)]
    try:
        WindowCalendar(settings.windows)
        for channel, chs in settings.channels.items():
            if chs.enabled or chs.connector:
                connector = check_connector(channel, chs.connector)
                if chs.enabled:  # a disabled channel's files are read by nothing
                    sections.append((f"channels.{channel.value}.connector.", connector))
    except ConfigError as exc:
        first, _, rest = str(exc).partition("\n")
        if first == "invalid configuration:":  # one line per problem: put the file before each
            raise ConfigError(first + "\n" + "\n".join(f"  {file}: {ln.strip()}" for ln in rest.splitlines())) \
                from None
        raise ConfigError(f"{file}: {exc}") from None
    if files:
        unreadable = [f"{file}: {key}: {path}: {why}" for prefix, model in sections
                      for key, path in named_files(model, prefix) if (why := _unreadable(path))]
        if unreadable:
            raise ConfigError("files the settings name:\n  " + "\n  ".join(unreadable))
    return settings


def named_files(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, Path]]:
    """``(key, path)`` of every ``*_file`` key set in ``model`` and the models inside it."""
    for name, field in type(model).model_fields.items():
        value, key = getattr(model, name), f"{prefix}{field.alias or name}"
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        if isinstance(value, BaseModel):
            yield from named_files(value, f"{key}.")
        elif items:
            for sub, item in items:
                if isinstance(item, BaseModel):
                    yield from named_files(item, f"{key}.{sub}.")
        elif name.endswith("_file") and isinstance(value, Path):
            yield key, value


def _unreadable(path: Path) -> str:
    try:
        return "" if path.read_bytes().strip() else "is empty"
    except OSError as exc:
        return f"cannot read ({exc.strerror})"


async def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "reference":
        print(reference(sections()), end="")
        return 0
    checked = check(Path(args.file), files=args.files)
    channels = [f"{ch.value}{'' if s.enabled else ' (disabled)'}" for ch, s in checked.channels.items()]
    print(f"{args.file}: ok (channels: {', '.join(channels) or 'none'})")
    return 0


def add(sub: Subparsers) -> None:
    p = sub.add_parser("config", help="the configuration reference; check a settings file")
    psub = p.add_subparsers(dest="action", required=True)
    psub.add_parser("reference", help="every key, its type, default and meaning (Markdown)")
    ch = psub.add_parser("check", help="validate a settings file as `volna run` reads it (exit 2 naming file and key)")
    ch.add_argument("file", help="the TOML file (e.g. /etc/volna/volna.toml)")
    ch.add_argument("--files", action="store_true",
                    help="also read every *_file it names (run it as the user the services run as)")
    p.set_defaults(handler=cmd_config, needs_settings=False)
