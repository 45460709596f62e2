"""What a debtor's reply asks for: opt-out and representative keywords (230-FZ art. 8).

A reply matches a keyword when the keyword's words appear in it as whole words, in order, next
to each other, after both are folded the same way: case ignored, ``ё`` read as ``е``, every
run of spaces, punctuation, emoji and symbols read as one space. So ``Стоп.``, ``СТОП!!!``,
``stop``, ``  Не   звоните!`` and ``пожалуйста, не звоните мне`` all match, and ``стопка``
does not. A representative keyword wins over an opt-out one (``через представителя, не
звоните`` is the art. 8 representative case); both put the debtor on the stop-list. A false
match stops contacts that were allowed; a missed one breaks the law: the rule leans to the
first. A keyword word ending in ``*`` matches any word it begins (``представител*`` matches
``представителем``, ``представителя``): Russian inflects, a list of every form would be long.
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
                    # fold() would read the "*" as a space: keep it on the word it ends.
                    folded = tuple(fold(w) + ("*" if w.endswith("*") else "") for w in word.split() if fold(w))
                    if folded:
                        self._rules.append((folded, KeywordHit(reason, word, language)))

    def match(self, text: str) -> KeywordHit | None:
        words = fold(text).split()
        if not words:
            return None
        for phrase, hit in self._rules:
            n = len(phrase)
            if any(_at(words, i, phrase) for i in range(len(words) - n + 1)):
                return hit
        return None


def _at(words: list[str], i: int, phrase: tuple[str, ...]) -> bool:
    for word, want in zip(words[i:i + len(phrase)], phrase, strict=True):
        if want.endswith("*"):
            if not word.startswith(want[:-1]):
                return False
        elif word != want:
            return False
    return True
