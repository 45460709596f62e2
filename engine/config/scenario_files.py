"""Scenario files (``scenarios/*.yaml``) read and validated: every fault is a :class:`ConfigError`
naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from engine.config.settings import parse_config_text
from engine.domain.scenarios import Scenario
from engine.errors import ConfigError


def load_scenario(path: Path) -> Scenario:
    raw = parse_config_text(path, yaml.safe_load, yaml.YAMLError, "YAML")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a scenario is a mapping at the top level")
    raw.setdefault("name", path.stem)
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"{path}: invalid scenario:\n  " + "\n  ".join(lines)) from None


def load_scenarios(directory: Path) -> dict[str, Scenario]:
    scenarios: dict[str, Scenario] = {}
    for path in sorted(directory.glob("*.yaml")):
        scenario = load_scenario(path)
        if scenario.name in scenarios:
            raise ConfigError(f"{path}: scenario name {scenario.name!r} is used twice")
        scenarios[scenario.name] = scenario
    return scenarios
