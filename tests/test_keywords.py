"""Opt-out and representative keywords (pure): folding, whole words, prefixes, precedence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


_noise = st.text(alphabet=" .,!?;:-—()\"'\n\t🙏*", max_size=4)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_any_reply_is_matched_or_not_never_an_error(text: str) -> None:
    hit = KW.match(text)
    assert hit is None or hit.reason in ("refused", "representative")
    assert fold(fold(text)) == fold(text)


@settings(max_examples=500, deadline=None)
@given(_noise, _noise, st.sampled_from(["стоп", "СТОП", "Stop", "не ЗВОНИТЕ", "ОТПИСАТЬСЯ"]),
       st.sampled_from(["", "пожалуйста", "хватит уже"]))
def test_a_keyword_in_any_case_and_punctuation_is_found(before: str, after: str, word: str, words: str) -> None:
    hit = KW.match(f"{words}{before} {word}{after}")
    assert hit is not None and hit.reason == "refused"
