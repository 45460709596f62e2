"""The configuration reference and the example cannot drift from the settings models (issue 17):
``docs/configuration.md`` is ``volna config reference``'s output, every key has a meaning,
``ops/volna.example.toml`` sets or shows every key of every model and nothing else, explains each,
and validates; ``volna config check`` refuses a bad file with one line naming the file and the key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from connectors.registry import settings_model
from engine.cli.config import sections
from engine.config.reference import keys, reference, set_paths
from engine.config.settings import Settings
from engine.domain.outcomes import Channel

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "ops" / "volna.example.toml"
PAGE = ROOT / "docs" / "configuration.md"

#: ``# key = value`` and ``# [table]`` lines: a key the example shows without setting it.
_SHOWN = re.compile(r"^# ?(?=\[|[A-Za-z_][\w-]* = )")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][\w-]* = ")


def _volna(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLNA_") and k != "REDIS_URL"}
    return subprocess.run([sys.executable, "-m", "engine.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def model_paths() -> set[str]:
    return {k.path for sec in sections() for k in sec.keys}


def example_paths(text: str) -> set[str]:
    """Every key the example sets or shows (``# key = value`` counts), as the reference writes it."""
    shown = "\n".join(_SHOWN.sub("", line) for line in text.splitlines())
    data: dict[str, Any] = tomllib.loads(shown)
    out = set(set_paths(Settings, {k: v for k, v in data.items() if k != "channels"}))
    for name, channel in data.get("channels", {}).items():
        plain = {k: v for k, v in channel.items() if k != "connector"} | {"connector": {}}
        out |= {p.replace(f"channels.{name}.", "channels.<channel>.", 1)
                for p in set_paths(Settings, {"channels": {name: plain}})}
        model: type[BaseModel] = settings_model(Channel(name))
        out |= set(set_paths(model, channel.get("connector", {}), f"channels.{name}.connector."))
    return out


def uncommented(text: str) -> list[str]:
    """Assignment lines with no comment on them and none above their group of assignments."""
    lines = [_SHOWN.sub("", line) for line in text.splitlines()]
    bare = []
    for i, line in enumerate(lines):
        if not _ASSIGNMENT.match(line) or " # " in line or line.rstrip().endswith("#"):
            continue
        j = i - 1
        while j >= 0 and _ASSIGNMENT.match(lines[j]) and " # " not in lines[j]:
            j -= 1
        if j < 0 or not (lines[j].startswith("#") or (_ASSIGNMENT.match(lines[j]) and " # " in lines[j])):
            bare.append(line)
    return bare


def test_the_configuration_page_is_the_generated_reference() -> None:
    out = _volna("config", "reference")
    assert out.returncode == 0, out.stderr
    assert out.stdout == reference(sections())
    assert PAGE.read_text(encoding="utf-8") == out.stdout, (
        "docs/configuration.md differs from the models: .venv/bin/volna config reference > docs/configuration.md")


def test_every_key_of_every_model_is_in_the_reference_with_a_meaning() -> None:
    paths = model_paths()
    assert {"redis.url", "windows.weekday.start", "pacing.<target>.rate_per_s", "channels.<channel>.enabled",
            "channels.ivr.connector.servers[].trunks[].dial", "channels.sms.connector.accounts[].throttle.decrease",
            "channels.whatsapp.connector.http.read_timeout_s", "channels.viber.connector.accounts[].username",
            "retention.phone_hash_key_file", "recordings.dir", "api.port"} <= paths
    assert len(paths) == len(list(keys(Settings))) + sum(len(list(keys(settings_model(ch)))) for ch in Channel)
    bare = [k.path for sec in sections() for k in sec.keys if not k.meaning]
    assert bare == [], f"keys without a `#:` comment in their model: {bare}"


def test_the_example_sets_or_shows_every_key_and_no_other() -> None:
    shown = example_paths(EXAMPLE.read_text(encoding="utf-8"))
    models = model_paths()
    assert models - shown == set(), f"ops/volna.example.toml lacks {sorted(models - shown)}"
    assert shown - models == set(), f"ops/volna.example.toml has keys no model knows: {sorted(shown - models)}"


def test_a_key_missing_from_the_example_is_found() -> None:
    """The comparison is not vacuous: a key taken out (set or shown) is missed."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for line, path in (("window_wait_s = 10.0", "channels.sms.connector.accounts[].window_wait_s"),
                       ("# source_ton = 5", "channels.sms.connector.accounts[].source_ton"),
                       ("lease_s = 30.0", "dispatcher.lease_s")):
        assert line in text
        cut = "\n".join(ln for ln in text.splitlines() if not ln.startswith(line))
        assert path in model_paths() - example_paths(cut)


def test_every_key_of_the_example_is_explained() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert uncommented(text) == []
    assert uncommented(text.replace("[redis]\n", "[redis]\nsneaky = 1\n", 1)) == ["sneaky = 1"]


def test_the_example_validates_with_every_channel(tmp_path: Path) -> None:
    out = _volna("config", "check", str(EXAMPLE))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{EXAMPLE}: ok (channels: ivr, sms, whatsapp (disabled), viber (disabled))"
    # The keys it only shows validate too (a secret inline is refused in a world-readable file).
    shown = "\n".join(_SHOWN.sub("", ln) for ln in EXAMPLE.read_text(encoding="utf-8").splitlines())
    file = tmp_path / "all.toml"
    file.write_text(shown, encoding="utf-8")
    file.chmod(0o600)
    out = _volna("config", "check", str(file))
    assert out.returncode == 0, out.stderr


_SMS = """
[channels.sms.connector]
[[channels.sms.connector.accounts]]
name = "smsc1"
system_id = "volna"
password_file = "/etc/volna/smpp-password"
"""

BAD = [
    ("", "missing.toml", "missing.toml: no such file"),
    ("redis = [", "bad.toml", "bad.toml: not valid TOML"),
    ("[redis]\nurl = 5\n", "bad.toml", "bad.toml: redis.url: Input should be a valid string"),
    ("[dispatcher]\nbatch_sise = 10\n", "bad.toml", "bad.toml: dispatcher.batch_sise: Extra inputs are not permitted"),
    (_SMS, "bad.toml", "bad.toml: channels.sms.connector.accounts.0.host: Field required"),
    ("[channels.ivr]\nenabled = true\n", "bad.toml", "bad.toml: channels.ivr.connector.servers: Field required"),
    ("[windows.channels.sms]\nweekdy = {start = \"09:00\", end = \"19:00\"}\n", "bad.toml",
     "bad.toml: windows.channels.sms: unknown day type(s) ['weekdy']"),
    ("[channels.fax]\nenabled = true\n", "bad.toml", "bad.toml: channels.fax.[key]: Input should be"),
]


@pytest.mark.parametrize(("text", "name", "says"), BAD, ids=[b[2] for b in BAD])
def test_config_check_refuses_bad_input_in_one_line(tmp_path: Path, text: str, name: str, says: str) -> None:
    if text:
        (tmp_path / name).write_text(text, encoding="utf-8")
    # A broken ./volna.toml is not read by `config check` of another file.
    (tmp_path / "volna.toml").write_text("broken = [", encoding="utf-8")
    out = _volna("config", "check", name, cwd=tmp_path)
    err = out.stderr.strip().splitlines()
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert len(err) == 1 and "Traceback" not in out.stderr, out.stderr
    assert err[0].startswith("volna: ") and says in err[0], err[0]


def test_a_reader_that_goes_away_gets_no_traceback() -> None:
    """``volna config reference | head -1``: the pipe closes early; the command stops quietly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLNA_")}
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli.main", "config", "reference"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    with proc:
        proc.stdout.close()  # before the first line is read
        err = proc.stderr.read().decode()
    assert proc.returncode == 141 and err == "", err


def test_config_check_files_reads_every_file_the_services_would(tmp_path: Path) -> None:
    secret, key = tmp_path / "smpp-password", tmp_path / "phone-hash.key"
    config = tmp_path / "volna.toml"
    config.write_text(f"""
[retention]
phone_hash_key_file = "{key}"
[channels.sms.connector]
[[channels.sms.connector.accounts]]
host = "127.0.0.1"
system_id = "volna"
password_file = "{secret}"
[channels.viber]
enabled = false
[channels.viber.connector]
[[channels.viber.connector.accounts]]
username = "volna"
password_file = "{tmp_path / 'nowhere'}"
""", encoding="utf-8")
    assert _volna("config", "check", str(config)).returncode == 0  # without --files: the settings only
    key.write_bytes(b"")
    out = _volna("config", "check", "--files", str(config))
    err = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(err) == 1, out.stderr
    assert f"{config}: retention.phone_hash_key_file: {key}: is empty" in err[0]
    assert f"{config}: channels.sms.connector.accounts.0.password_file: {secret}: cannot read (No such file" in err[0]
    assert "viber" not in err[0]  # a disabled channel's files are read by nothing
    secret.write_text("pw\n", encoding="utf-8")
    key.write_bytes(b"k" * 32)
    out = _volna("config", "check", "--files", str(config))
    assert out.returncode == 0 and out.stdout.strip() == f"{config}: ok (channels: sms, viber (disabled))", out.stderr
