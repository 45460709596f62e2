"""SMPP connector settings: validation, derived values, secrets, the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.registry import build_connector
from connectors.smpp import SmppConnector
from connectors.smpp.settings import AccountSettings
from engine.config.settings import Settings
from engine.domain.outcomes import Channel
from engine.errors import ConfigError


def _raw(**over: Any) -> dict[str, Any]:
    acc = {"name": "smsc1", "host": "127.0.0.1", "system_id": "volna", "password": "secret"}
    acc.update(over)
    return {"accounts": [acc]}


def test_defaults() -> None:
    conn = SmppConnector.from_config(_raw(), resend_unconfirmed=True)
    acc = conn.settings.accounts[0]
    assert conn.resend_unconfirmed and conn.channel is Channel.SMS
    assert (acc.port, acc.window, acc.binds, acc.bind_mode, acc.max_parts, acc.parts_policy) == (
        2775, 10, 1, "transceiver", 6, "all")
    # No engine-wide concurrency by default: the bind's window bounds what the SMSC holds.
    assert [(t.name, t.rate_per_s, t.max_concurrent) for t in conn.targets()] == [("smsc1", 50.0, None)]


@pytest.mark.parametrize(("source", "expected"), [
    ("Volna", (5, 0, "Volna")),
    ("+79001234567", (1, 1, "79001234567")),
    ("79001234567", (1, 1, "79001234567")),
])
def test_source_address(source: str, expected: tuple[int, int, str]) -> None:
    acc = AccountSettings.model_validate(_raw(source_addr=source)["accounts"][0])
    assert acc.source() == expected
    over = AccountSettings.model_validate(_raw(source_addr=source, source_ton=3, source_npi=0)["accounts"][0])
    assert over.source()[:2] == (3, 0)


@pytest.mark.parametrize(("over", "message"), [
    ({"password": None}, "password or password_file"),
    ({"password": "123456789"}, "longer than 8"),
    ({"source_addr": "VeryLongSender"}, "at most 11"),
    ({"system_id": "x" * 16}, "system_id"),
    ({"bind_mode": "receiver"}, "bind_mode"),
    ({"concat_ref_bits": 12}, "concat_ref_bits"),
    ({"submit_id_base": "oct"}, "submit_id_base"),
    ({"reconnect_min_s": 5, "reconnect_max_s": 1}, "reconnect_max_s"),
    ({"window": 0}, "window"),
    ({"unknown_key": 1}, "unknown_key"),
])
def test_invalid(over: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SmppConnector.from_config(_raw(**over))


def test_duplicate_names() -> None:
    raw = _raw()
    raw["accounts"].append(dict(raw["accounts"][0]))
    with pytest.raises(ConfigError, match="unique"):
        SmppConnector.from_config(raw)


def test_password_file_is_read_each_time(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("first\n")
    acc = AccountSettings.model_validate(_raw(password=None, password_file=str(secret))["accounts"][0])
    assert acc.secret() == "first"
    secret.write_text("second")
    assert acc.secret() == "second"
    secret.unlink()
    with pytest.raises(ConfigError, match="cannot read"):
        acc.secret()


def test_registry_builds_it() -> None:
    settings = Settings(channels={"sms": {"connector": _raw(), "resend_unconfirmed": False}})
    conn = build_connector(Channel.SMS, settings)
    assert isinstance(conn, SmppConnector) and conn.targets()[0].name == "smsc1"
    bad = Settings(channels={"sms": {"connector": {"accounts": []}}})
    with pytest.raises(ConfigError, match="accounts"):
        build_connector(Channel.SMS, bad)
