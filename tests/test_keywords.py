"""Opt-out and representative keywords (pure): folding, whole words, prefixes, precedence."""

from __future__ import annotations

import pytest

from engine.config.settings import DEFAULT_OPT_OUT, DEFAULT_REPRESENTATIVE
from engine.domain.keywords import Keywords, fold

KW = Keywords(DEFAULT_OPT_OUT, DEFAULT_REPRESENTATIVE)


@pytest.mark.parametrize(("text", "reason"), [
    ("Стоп.", "refused"), ("СТОП!!!", "refused"), ("  стоп ", "refused"), ("STOP", "refused"),
    ("stop!", "refused"), ("Не   ЗВОНИТЕ!", "refused"), ("пожалуйста, не звоните мне", "refused"),
    ("Отписаться", "refused"), ("не-звоните", "refused"), ("🙏стоп🙏", "refused"),
    ("через представителя", "representative"), ("Мой адвокат свяжется", "representative"),
    ("через представителя, не звоните", "representative"), ("Representative please", "representative"),
    ("стопка", None), ("оплачу завтра", None), ("", None), ("...", None), ("звоните", None),
])
def test_replies(text: str, reason: str | None) -> None:
    hit = KW.match(text)
    assert (hit.reason if hit else None) == reason


def test_fold_reads_yo_as_ye_and_symbols_as_space() -> None:
    assert fold("  Ёлки-ПАЛКИ!! ") == "елки палки"
    assert Keywords({"ru": ["отказываюсь от звонков"]}, {}).match("ОТКАЗЫВАЮСЬ, от звонков.") is not None
