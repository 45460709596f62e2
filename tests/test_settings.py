"""Settings: the example file documents a valid configuration; errors say what and where."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.config.settings import load_settings
from engine.errors import ConfigError
from tests.harness import ROOT

EXAMPLE = ROOT / "ops" / "volna.example.toml"


def test_example_config_is_valid(tmp_path: Path) -> None:
    settings = load_settings(EXAMPLE)
    assert settings.caps.message.day == 2 and settings.windows.weekday.start.hour == 8
    # The example's secrets are *_file paths of a real deployment: the connector sections are
    # checked by each connector's own tests; here, that every channel documents guarantee 4.
    assert all(section.resend_unconfirmed is False for section in settings.channels.values())


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "volna.toml"
    path.write_text('[dispatcher]\nbatch_size = 100\n')
    monkeypatch.setenv("VOLNA_DISPATCHER__BATCH_SIZE", "300")
    assert load_settings(path).dispatcher.batch_size == 300


def test_bad_values_say_where(tmp_path: Path) -> None:
    path = tmp_path / "volna.toml"
    path.write_text('[caps]\nmessage = { day = -1, week = 4, month = 16 }\n')
    with pytest.raises(ConfigError, match=r"caps\.message\.day"):
        load_settings(path)
    path.write_text('[dispatcher\nbatch_size = 1\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path)
    path.write_text('[windows]\nweekday = { start = "20:00", end = "08:00" }\n')
    with pytest.raises(ConfigError, match="window end"):
        load_settings(path)


def test_world_readable_file_with_secrets_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "volna.toml"
    path.write_text('[channels.sms.connector]\npassword = "hunter2"\n')
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="world-readable") as err:
        load_settings(path)
    assert "hunter2" not in str(err.value)
    os.chmod(path, 0o600)
    load_settings(path)
