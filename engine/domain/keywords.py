"""What a debtor's reply asks for: opt-out and representative keywords (230-FZ art. 8).

A reply matches a keyword when the keyword's words appear in it as whole words, in order, next
to each other, after both are folded the same way: case ignored, ``ё`` read as ``е``, every
run of spaces, punctuation, emoji and symbols read as one space. So ``Стоп.``, ``СТОП!!!``,
``stop``, ``  Не   звоните!`` and ``пожалуйста, не звоните мне`` all match, and ``стопка``
does not. A representative keyword wins over an opt-out one (``через представителя, не
звоните`` is the art. 8 representative case); both put the debtor on the stop-list. A false
match stops contacts that were allowed; a missed one breaks the law: the rule leans to the
first.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def fold(text: str) -> str:
    """``  Не-ЗВОНИТЕ!! `` → ``не звоните``."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKC", text).casefold():
        if ch == "ё":
            ch = "е"
        cat = unicodedata.category(ch)
        out.append(ch if cat[0] in "LN" else " ")
    return " ".join("".join(out).split())


@dataclass(frozen=True, slots=True)
class KeywordHit:
    reason: str  # refused | representative (engine.gates.stoplist.StopReason)
    keyword: str
    language: str


class Keywords:
    """The configured keywords, folded once; :meth:`match` is pure."""

    def __init__(self, opt_out: Mapping[str, Sequence[str]], representative: Mapping[str, Sequence[str]]) -> None:
        self._rules: list[tuple[tuple[str, ...], KeywordHit]] = []
        for reason, table in (("representative", representative), ("refused", opt_out)):
            for language, words in sorted(table.items()):
                for word in words:
                    folded = tuple(fold(word).split())
                    if folded:
                        self._rules.append((folded, KeywordHit(reason, word, language)))

    def match(self, text: str) -> KeywordHit | None:
        words = fold(text).split()
        if not words:
            return None
        for phrase, hit in self._rules:
            n = len(phrase)
            if any(tuple(words[i:i + n]) == phrase for i in range(len(words) - n + 1)):
                return hit
        return None
