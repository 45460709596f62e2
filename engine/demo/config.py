"""The demo's ``volna.toml``: every channel pointed at its simulator on this machine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Demo-only credentials of the bundled simulators (never a real account's).
SIM_SMPP_PASSWORD = "sim-pass"
SIM_AMI_SECRET = "sim-secret"


def demo_config(redis_url: str, ports: dict[str, int], clock_spec: str, scenarios: Path,
                archive_dsn: str = "", phone_key: Path | None = None) -> dict[str, Any]:
    return {
        "clock": clock_spec,
        "archive": {"dsn": archive_dsn, "poll_s": 0.5},
        "retention": {"phone_hash_key_file": str(phone_key)} if phone_key else {},
        "scenarios_dir": str(scenarios),
        "redis": {"url": redis_url},
        "api": {"host": "127.0.0.1", "port": ports["api"]},
        "log": {"level": "INFO", "json": True},
        "dispatcher": {"lease_s": 15.0, "batch_size": 200},
        "channels": {
            "ivr": {"connector": {
                "ring_timeout_s": 8.0, "inbound_contexts": ["from-debtors"],
                "servers": [{"name": "sim-ast", "host": "127.0.0.1", "port": ports["ami"], "username": "volna",
                             "secret": SIM_AMI_SECRET, "auth": "md5",
                             "trunks": [{"name": "sim-trunk", "dial": "Local/{number}@debtor-sim",
                                         "number_format": "national_8", "rate_per_s": 150.0,
                                         "max_concurrent": 400}]}],
            }},
            "sms": {"connector": {
                "accounts": [{"name": "sim-smsc", "host": "127.0.0.1", "port": ports["smsc"],
                              "system_id": "volna", "password": SIM_SMPP_PASSWORD, "binds": 2,
                              "rate_per_s": 500.0, "max_concurrent": 100, "source_addr": "VOLNA"}],
            }},
            "viber": {"connector": {
                "base_url": f"http://127.0.0.1:{ports['gateway']}",
                "callback_token": "sim-callback-token", "callback_hmac_secret": "sim-hmac-secret",
                "accounts": [{"name": "sim-viber", "username": "volna", "password": "sim-password",
                              "rate_per_s": 300.0, "max_concurrent": 100}],
            }},
            # Enabled for its webhook (debtors' replies); the demo's dispatchers send on ivr,sms,viber only.
            "whatsapp": {"enabled": True, "connector": {
                "base_url": f"http://127.0.0.1:{ports['gateway']}", "app_secret": "sim-app-secret",
                "verify_token": "verify-me",
                "accounts": [{"name": "sim-wa", "phone_number_id": "1000000001", "access_token": "sim-wa-token"}],
            }},
        },
    }


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list) and all(not isinstance(v, dict) for v in value):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


def write_config(config: dict[str, Any], path: Path) -> Path:
    """TOML with the top-level scalars first and one table per section; mode 0600 (it holds secrets)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for section, body in config.items():
        if isinstance(body, dict):
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in body.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path
