"""Logs carry no phone number unmasked and no name; lines about an attempt carry its ids.

Acceptance 4 is :func:`test_a_representative_run_logs_no_phone_and_no_name`: the observed
engine of the metrics tests (every channel, refused webhooks, a send that fails quoting the
number, an inbound call) logs at DEBUG through the production JSON formatter, and every line
goes through a phone-number finder (``phonenumbers``' matcher, any written form).

The whole suite can be held to the same rule with :func:`phone_leak_guard` (see its doc).
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import phonenumbers
import pytest

from engine.config.settings import LogSettings
from engine.domain.outcomes import Channel
from engine.logs import JsonFormatter, setup_logging
from engine.port import InboundEvent, LateEvent
from tests.test_metrics_support import NAME, observed_engine, wave_rows

#: Cheap pre-filter: a line without ten digits close together holds no phone number.
_DIGITS = re.compile(r"\d[\d\s().-]{8,}\d")
_INTERNATIONAL = re.compile(r"\+\d{10,15}")
#: Loggers whose records the guard lowers to INFO to see (production's default level).
_OWN_LOGGERS = ("engine", "connectors", "simulators")


def unmasked_phones(text: str, region: str = "RU") -> list[str]:
    """Phone numbers written out in ``text`` in any form (``+79161234567``, ``8 916 123-45-67``,
    ``79161234567``…); a masked ``+7916***4567`` is not one."""
    if not _DIGITS.search(text):
        return []
    found = [m.raw_string for m in phonenumbers.PhoneNumberMatcher(text, region,
                                                                   leniency=phonenumbers.Leniency.VALID)]
    return found + [m for m in _INTERNATIONAL.findall(text) if m not in found]


class PhoneLeakHandler(logging.Handler):
    """Formats every record as production does (JSON) and keeps the lines that show a phone."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []
        self.leaks: list[tuple[str, list[str]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        self.lines.append(line)
        phones = unmasked_phones(line)
        if phones:
            self.leaks.append((line, phones))


@pytest.fixture
def phone_leak_guard() -> Iterator[PhoneLeakHandler]:
    """Fails the test when any log record it caused, formatted as in production, shows a phone.

    To hold every test to it, the core's ``tests/conftest.py`` adds::

        from tests.test_log_privacy import phone_leak_guard  # noqa: F401 (a fixture)

        @pytest.fixture(autouse=True)
        def _no_phone_in_logs(phone_leak_guard):
            yield

    The engine's, connectors' and simulators' loggers are lowered to INFO for the test (what
    production logs); records of dispatcher subprocesses are in their ``*.log`` files, which
    :func:`unmasked_phones` can read the same way.
    """
    handler = PhoneLeakHandler()
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in _OWN_LOGGERS}
    for name in _OWN_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    if handler.leaks:
        shown = "\n".join(f"  {phones}: {line[:300]}" for line, phones in handler.leaks[:10])
        pytest.fail(f"{len(handler.leaks)} log line(s) show a phone number unmasked:\n{shown}")


def test_the_finder_sees_every_written_form_and_no_masked_one() -> None:
    for text in ("+79161234567", "8 916 123-45-67", "call 79161234567 now", "9161234567", "+7 (916) 123-45-67",
                 '{"recipient_id": "79160000070"}', "+442079460958"):
        assert unmasked_phones(text), text
    for text in ("+7916***4567", '{"ts": "2026-12-01T09:00:00.123+00:00", "at_ms": 1764590400000}',
                 "task t-1001 attempt 3 of wave 2026-12-01-ivr", "ЛС00000012", "m-w1-t70-1", "7701-123456"):
        assert not unmasked_phones(text), text


def test_the_json_formatter_masks_messages_extras_and_tracebacks() -> None:
    handler = PhoneLeakHandler()
    log = logging.getLogger("engine.test_log_privacy")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("gateway said: unknown subscriber %s", "+79161234567",
                    extra={"wave": "w1", "task": "t1", "attempt": 2, "to": "+79161234567",
                           "data": {"recipient": "79161234567", "list": ["+79161234567"]}})
        try:
            raise ValueError("no route to +79161234567")
        except ValueError:
            log.exception("send failed")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    assert not handler.leaks, handler.leaks
    first = json.loads(handler.lines[0])
    assert first["msg"] == "gateway said: unknown subscriber +7916***4567"
    assert (first["wave"], first["task"], first["attempt"]) == ("w1", "t1", 2)
    assert first["data"] == {"recipient": "79161***4567", "list": ["+7916***4567"]}
    assert "+7916***4567" in json.loads(handler.lines[1])["exc"]


def test_the_guard_catches_a_leak() -> None:
    handler = PhoneLeakHandler()
    handler.emit(logging.makeLogRecord({"name": "x", "levelno": 30, "levelname": "WARNING",
                                        "msg": "raw", "to": 79161234567}))
    assert handler.leaks and handler.leaks[0][1] == ["79161234567"]


async def test_a_representative_run_logs_no_phone_and_no_name(redis_url: str) -> None:
    handler = PhoneLeakHandler()
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in _OWN_LOGGERS}
    for name in _OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        async with observed_engine(redis_url) as obs:
            await obs.settled()
            ivr = obs.connectors[Channel.IVR]
            await ivr.emit(InboundEvent(Channel.IVR, "+79169998877"))       # a number we do not know
            await ivr.emit(LateEvent(Channel.IVR, "no-such-call", None))    # an id we do not know
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    entries = [json.loads(line) for line in handler.lines]  # every line is one JSON object
    assert len(entries) > 60
    assert not handler.leaks, "\n".join(f"{p}: {line}" for line, p in handler.leaks[:10])
    assert not [line for line in handler.lines if NAME in line or "Иванов" in line]
    phones = {r["phone"] for r in wave_rows()}
    assert not [line for line in handler.lines if any(p in line or p[1:] in line for p in phones)]
    # The lines about one attempt carry its wave, task and attempt ids as fields.
    failed = [e for e in entries if e["logger"] == "engine.dispatch.sender" and e["msg"].startswith("send failed")]
    assert len(failed) == 1 and (failed[0]["wave"], failed[0]["task"], failed[0]["attempt"]) == ("w1", "t50", 1)
    assert "+7916***0050" in failed[0]["msg"]
    ended = [e for e in entries if e["logger"] == "engine.dispatch.finisher" and e["msg"] == "attempt ended"]
    assert len(ended) >= len(wave_rows()) - 2
    assert all({"wave", "task", "attempt", "channel", "outcome", "final"} <= set(e) for e in ended)
    assert any(e["logger"] == "engine.dispatch.inbound" and "+7916***8877" in e["msg"] for e in entries)


def test_log_levels_per_component_come_from_the_config() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    names = ("engine.dispatch.loop", "engine.dispatch.finisher", "connectors.smpp")
    saved = {n: logging.getLogger(n).level for n in names}
    try:
        setup_logging(LogSettings(level="INFO", json=True, components={"engine.dispatch.loop": "ERROR",
                                                                       "connectors.smpp": "DEBUG"}), stream=stream)
        logging.getLogger("engine.dispatch.loop").warning("dropped")
        logging.getLogger("engine.dispatch.finisher").info("kept", extra={"wave": "w1", "task": "t1", "attempt": 1})
        logging.getLogger("engine.dispatch.finisher").debug("dropped too")
        logging.getLogger("connectors.smpp").debug("kept as well")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["logger"], e["msg"]) for e in lines] == [("engine.dispatch.finisher", "kept"),
                                                         ("connectors.smpp", "kept as well")]
    assert lines[0]["wave"] == "w1" and lines[0]["level"] == "info"


def test_the_guard_fixture_passes_a_clean_test(phone_leak_guard: PhoneLeakHandler) -> None:
    logging.getLogger("engine.test_log_privacy").info("sent to %s", "+7916***4567")
    assert phone_leak_guard.lines and not phone_leak_guard.leaks
