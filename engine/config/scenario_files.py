"""Scenario files (``scenarios/*.yaml``) read and validated: every fault is a :class:`ConfigError`
naming the file and the key. :func:`lawful_scenarios` also applies :mod:`engine.domain.compliance`
(what the law asks of their content): ``volna scenarios check``/``compile`` and ``volna run`` use it."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from engine.config.settings import parse_config_text
from engine.domain.compliance import scenario_problems
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


def scenario_files(directory: Path) -> dict[str, tuple[Path, Scenario]]:
    """Every scenario of ``directory`` by name, with its file."""
    found: dict[str, tuple[Path, Scenario]] = {}
    for path in sorted(directory.glob("*.yaml")):
        scenario = load_scenario(path)
        if scenario.name in found:
            raise ConfigError(f"{path}: scenario name {scenario.name!r} is used twice")
        found[scenario.name] = (path, scenario)
    return found


def load_scenarios(directory: Path) -> dict[str, Scenario]:
    return {name: scenario for name, (_, scenario) in scenario_files(directory).items()}


def lawful_scenarios(directory: Path) -> dict[str, Scenario]:
    """:func:`load_scenarios`, refused whole (one line per problem, with its file) when any
    scenario's content breaks a legal rule (:func:`engine.domain.compliance.scenario_problems`)."""
    found = scenario_files(directory)
    problems = [f"{path}: {problem}" for path, scenario in found.values() for problem in scenario_problems(scenario)]
    if problems:
        raise ConfigError("scenarios the law does not allow:\n  " + "\n  ".join(problems))
    return {name: scenario for name, (_, scenario) in found.items()}
