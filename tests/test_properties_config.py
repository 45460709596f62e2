"""Property tests of the files an operator writes: ``volna.toml`` (``engine.config.settings.load_settings``),
scenario YAML (``engine.config.scenario_files.load_scenario``) and the message templates in them. Any text
loads or raises our ``ConfigError`` with a message naming the file; whatever loads can be used
(the clock spec, the log levels, the window calendar); never another exception, never a hang."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.calendar.clock import make_clock
from engine.calendar.windows import WindowCalendar
from engine.config.scenario_files import load_scenario
from engine.config.settings import Settings, load_settings
from engine.domain.scenarios import Scenario
from engine.domain.templates import check_template, render
from engine.errors import ConfigError
from tests.chaos.world import to_toml

FAST = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WORK = Path(tempfile.mkdtemp(prefix="volna-props-"))


@contextmanager
def _no_env() -> Iterator[None]:
    """Without the test run's REDIS_URL / VOLNA_* (they would override what is being tested)."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k == "REDIS_URL" or k.startswith("VOLNA_")}
    try:
        yield
    finally:
        os.environ.update(saved)


def _write(name: str, data: bytes) -> Path:
    path = WORK / name
    path.write_bytes(data)
    path.chmod(0o600)
    return path


# ---- volna.toml ---------------------------------------------------------------------------------

_scalar = st.one_of(st.booleans(), st.integers(-10, 10**6), st.floats(-1e6, 1e6, allow_nan=False),
                    st.text(max_size=12), st.sampled_from(["08:00", "20:00", "25:99", "INFO", "DEBUG", "nope", "RU",
                                                           "XX", "redis://127.0.0.1:6379/0", "1:1.0:1", "", "0"]))
_SECTIONS: dict[str, list[str]] = {
    "redis": ["url", "results_maxlen", "correlation_ttl_s", "cluster", "extra"],
    "windows": ["weekday", "weekend", "legal_weekday", "legal_weekend", "calendar", "channels", "campaigns"],
    "caps": ["enabled", "conversation", "message"],
    "dispatcher": ["batch_size", "max_inflight", "lease_s", "drain_grace_s", "rate_headroom", "claim_ahead_s",
                   "idle_poll_s"],
    "api": ["host", "port", "max_body_bytes", "max_upload_bytes"],
    "log": ["level", "json", "components"],
}
_INNER = ["start", "end", "day", "week", "month", "rate_per_s", "max_concurrent", "sms", "ivr", "weekday", "c1",
          "connector", "enabled", "resend_unconfirmed", "engine", "password", "token_file"]


def _value(depth: int = 2) -> st.SearchStrategy[Any]:
    if depth == 0:
        return _scalar
    return st.one_of(_scalar, st.lists(_value(depth - 1), max_size=3),
                     st.dictionaries(st.sampled_from(_INNER), _value(depth - 1), max_size=3))


_config = st.fixed_dictionaries({}, optional={
    **{name: st.dictionaries(st.sampled_from(keys), _value(), max_size=4) for name, keys in _SECTIONS.items()},
    "pacing": st.dictionaries(st.sampled_from(["smsc1", "trunk-a"]), _value(), max_size=2),
    "channels": st.dictionaries(st.sampled_from(["sms", "ivr", "viber", "whatsapp", "fax"]), _value(), max_size=2),
    "clock": _scalar, "scenarios_dir": _scalar, "unknown_key": _scalar,
})


def _usable(s: Settings) -> None:
    """What a process does with settings right after loading them: none of it may raise."""
    try:
        WindowCalendar(s.windows)
    except ConfigError:
        pass
    make_clock(s.clock)
    levels = [s.log.level, *s.log.components.values()]
    assert all(isinstance(logging.getLevelName(level), int) for level in levels)


def _load(path: Path) -> Settings | None:
    with _no_env():
        try:
            return load_settings(path)
        except ConfigError as exc:
            assert str(path) in str(exc) or "invalid configuration" in str(exc)
            return None


@FAST
@given(st.text(max_size=300))
def test_any_text_as_volna_toml(text: str) -> None:
    s = _load(_write("any.toml", text.encode("utf-8", "surrogatepass").decode("utf-8", "replace").encode()))
    if s is not None:
        _usable(s)


@FAST
@given(_config)
def test_any_config_shaped_toml(config: dict[str, Any]) -> None:
    text = to_toml(config)
    s = _load(_write("shaped.toml", text.encode()))
    if s is not None:
        _usable(s)


def test_a_world_readable_config_with_a_secret_is_refused() -> None:
    path = _write("secret.toml", b'[channels.sms.connector]\npassword = "x"\n')
    path.chmod(0o644)
    with _no_env(), pytest.raises(ConfigError, match="world-readable"):
        load_settings(path)


# ---- scenarios ----------------------------------------------------------------------------------

_OUTCOMES = ["busy", "no_answer", "delivered", "not_subscribed", "answered", "nonsense", "on"]
_template = st.one_of(st.text(max_size=40), st.sampled_from([
    "{creditor}: {amount:money}", "{amount:nope}", "{a.b}", "{0}", "{x!r}", "{", "}", "{{x}}", "{x:money:text}",
    "{name} {name:date}", "{" * 50, "долг {amount:money} ₽",
]))
_scenario = st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.text(max_size=10), st.integers()),
    "title": _scalar,
    "ivr_cap_class": st.sampled_from(["message", "conversation", "both", 1]),
    "messages": st.fixed_dictionaries({}, optional={
        "sms": _template, "viber": _template, "sms_details": _template, "fax": _template,
        "whatsapp": st.one_of(_scalar, st.fixed_dictionaries(
            {"name": st.text(max_size=10)}, optional={"language": st.text(max_size=3),
                                                      "body_params": st.lists(st.text(max_size=5), max_size=3)})),
    }),
    "retry": st.lists(st.fixed_dictionaries({}, optional={
        "when": st.lists(st.sampled_from(_OUTCOMES), max_size=3), "delay_s": _scalar,
        "max_attempts": st.integers(-1, 30), "on": _scalar}), max_size=3),
    "cascade": st.lists(st.fixed_dictionaries({}, optional={
        "from": st.sampled_from(["viber", "sms", "fax"]), "to": st.sampled_from(["sms", "ivr"]),
        "when": st.lists(st.sampled_from(_OUTCOMES), max_size=3), "after_s": _scalar}), max_size=3),
    "caps_count": st.dictionaries(st.sampled_from(["ivr", "sms", "viber", "fax"]),
                                  st.lists(st.sampled_from(_OUTCOMES), max_size=3), max_size=3),
    "ivr": st.one_of(_scalar, st.dictionaries(st.sampled_from(["steps", "max_duration_s"]), _value(1), max_size=2)),
    "inbound_cancels_calls": _scalar,
    "unknown": _scalar,
})


def _load_scenario(path: Path) -> Scenario | None:
    try:
        return load_scenario(path)
    except ConfigError as exc:
        assert str(path) in str(exc)
        return None


@FAST
@given(st.text(max_size=300))
def test_any_text_as_a_scenario(text: str) -> None:
    _load_scenario(_write("any.yaml", text.encode("utf-8", "surrogatepass").decode("utf-8", "replace").encode()))


@FAST
@given(_scenario)
def test_any_scenario_shaped_yaml(doc: dict[str, Any]) -> None:
    scenario = _load_scenario(_write("shaped.yaml", yaml.safe_dump(doc, allow_unicode=True).encode()))
    if scenario is not None:
        for text in (scenario.messages.sms, scenario.messages.viber, scenario.messages.sms_details):
            if text is not None:
                check_template(text)  # a loaded scenario's templates are valid


@FAST
@given(_template, st.dictionaries(st.sampled_from(["creditor", "amount", "name", "x", "a"]),
                                  st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                                            st.text(max_size=10), st.sampled_from(["1e999999", "nan", "-0", "12,5",
                                                                                   "Infinity", "1e27", "0.005"])),
                                  max_size=5))
def test_a_template_renders_or_says_why(template: str, variables: dict[str, Any]) -> None:
    """The dispatcher ends an attempt ``error`` on ``KeyError``/``ValueError`` from ``render``: nothing
    else may come out of it, for any valid template and any task vars."""
    try:
        check_template(template)
    except ValueError:
        return
    try:
        assert isinstance(render(template, variables), str)
    except (KeyError, ValueError):
        pass


# ---- what the properties found (each was a raw exception before its fix) ------------------------


def test_a_file_that_is_not_utf8_is_a_config_error() -> None:
    """A file saved in cp1251 (a Russian operator's editor) is refused naming the file and the
    byte, not with a ``UnicodeDecodeError`` traceback."""
    with _no_env(), pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(_write("cp1251.toml", 'title = "Мосэнергосбыт"\n'.encode("cp1251")))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_scenario(_write("cp1251.yaml", "title: Мягкое напоминание\n".encode("cp1251")))


def test_deep_nesting_is_a_config_error() -> None:
    """``tomllib`` and PyYAML recurse per nesting level: a few thousand ``[`` would raise
    ``RecursionError``; it is a config error naming the file."""
    with _no_env(), pytest.raises(ConfigError, match="nested too deeply"):
        load_settings(_write("deep.toml", b"a = " + b"[" * 5000))
    with pytest.raises(ConfigError, match=r"deep\.yaml"):
        load_scenario(_write("deep.yaml", b"[" * 5000))


def test_a_bad_clock_spec_is_a_config_error() -> None:
    """``clock`` is parsed when the config is read, not at ``volna run`` start-up."""
    for spec in ("tomorrow", "1:2", "1:0:3", "1:2:3:4", "x:1:2"):
        with _no_env(), pytest.raises(ConfigError, match="clock"):
            load_settings(_write("clock.toml", f'clock = "{spec}"\n'.encode()))
    with _no_env():
        assert load_settings(_write("clock.toml", b'clock = "1000:60:2000"\n')).clock == "1000:60:2000"


def test_a_bad_log_level_is_a_config_error() -> None:
    """``Logger.setLevel("VERBOSE")`` would raise at start-up; the config names the key instead."""
    with _no_env(), pytest.raises(ConfigError, match="level"):
        load_settings(_write("level.toml", b'[log]\nlevel = "verbose"\n'))
    with _no_env(), pytest.raises(ConfigError, match="level"):
        load_settings(_write("component.toml", b'[log]\ncomponents = {"engine" = "loud"}\n'))
    with _no_env():
        log = load_settings(_write("ok.toml", b'[log]\nlevel = "debug"\ncomponents = {"engine" = "warning"}\n')).log
        assert (log.level, log.components) == ("DEBUG", {"engine": "WARNING"})


def test_a_redis_key_that_is_not_a_table_is_a_config_error() -> None:
    """With ``REDIS_URL`` set, a config whose ``redis`` is not a table is refused naming the key
    (the URL is merged only into a table)."""
    path = _write("redis5.toml", b"redis = 5\n")
    with _no_env():
        os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/0"
        try:
            with pytest.raises(ConfigError, match="redis"):
                load_settings(path)
        finally:
            del os.environ["REDIS_URL"]
