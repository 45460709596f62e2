"""Property tests: any bytes as a task line either parse into a valid task or are rejected with
our own error and a reason — never another exception, never a hang."""

from __future__ import annotations

import json
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.domain.models import Task
from engine.errors import IntakeError
from engine.intake.lines import FileFormat, TaskLines

DAY = date(2026, 12, 1)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)

FIELDS = ["task_id", "wave_id", "campaign_id", "debtor_id", "channel", "phone", "tz", "region", "scenario",
          "vars", "priority", "not_before", "deadline", "max_attempts", "cascade"]
GOOD = {"task_id": "t1", "debtor_id": "d1", "channel": "sms", "phone": "+79161234567", "scenario": "s",
        "wave_id": "w", "campaign_id": "c"}


def _check(raw: bytes, fmt: str, reader: TaskLines | None = None) -> None:
    reader = reader or TaskLines(FileFormat(kind=fmt))  # type: ignore[arg-type]
    try:
        obj = reader.parse(raw)
        if obj is None:
            return
        Task.model_validate({**GOOD, **obj} if fmt == "csv" else obj)
    except IntakeError as exc:
        assert exc.reason
    except ValidationError as exc:
        assert exc.errors()


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_any_bytes_as_jsonl(raw: bytes) -> None:
    _check(raw, "jsonl")


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8))
def test_any_json_object_as_a_task(obj: dict[str, object]) -> None:
    _check(json.dumps({**GOOD, **obj}).encode(), "jsonl")


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.text(max_size=20), min_size=1, max_size=6))
def test_any_csv_row(cells: list[str]) -> None:
    reader = TaskLines(FileFormat(kind="csv"))
    reader.parse(b"task_id,debtor_id,channel,phone,var_amount,cascade")
    line = ",".join('"' + c.replace('"', '""') + '"' for c in cells)
    _check(line.encode(), "csv", reader)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(["auto", "utf-8", "cp1251"]), st.sampled_from(["auto", ",", ";", "\t"]))
def test_any_bytes_as_csv_in_any_encoding_and_separator(raw: bytes, encoding: str, delimiter: str) -> None:
    reader = TaskLines(FileFormat(kind="csv", encoding=encoding, delimiter=delimiter))  # type: ignore[arg-type]
    for line in (b"task_id;debtor_id;channel;phone" if delimiter != "," else b"task_id,debtor_id,channel,phone", raw):
        _check(line, "csv", reader)
