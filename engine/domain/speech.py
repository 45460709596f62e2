"""Russian numbers, amounts, digits and dates as the sound files an IVR plays, one after another.

Asterisk's ``SayNumber`` in Russian (``ast_say_number_full_ru`` in ``main/say.c``) stops at
10⁹ ("We were unable to say the number …") and reads its argument with ``atoi`` (2³¹ and up
overflow), and a file it cannot find is skipped without a trace. So the engine composes the
list of files itself, with the same file names and the same grammar as ``say.c`` — any stock
Russian sound set has them — and the dialplan plays the list file by file, checking
``PLAYBACKSTATUS`` after each (``connectors/ami/dialplan.py``): every amount below 10¹² is said,
and a missing file is reported.

The grammar (``say.c``): units 1 and 2 have a feminine form (``digits/1f`` «одна»,
``digits/2f`` «две») used before «тысяча» and for kopecks; the unit word after a group takes the
plural form of the group's last digits (1 → «тысяча», 2–4 → «тысячи», else «тысяч»; 11–14 →
«тысяч»). Billions, which ``say.c`` has no words for, are ``volna/milliard``, ``…-a``, ``…-ov``.

Dates are said as Russian dates are written in a letter, «двадцать пятого декабря»: one file
per day in the genitive ordinal (``volna/date/day-25``) and one per month in the genitive
(``volna/date/month-12``); the year is not said (a due date is within the coming months).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Literal

PluralForm = Literal["one", "few", "many"]

#: Below this the engine can say an amount (the intake refuses anything larger).
MAX_SAYABLE = 10**12

_ONES = ["ноль", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять", "десять",
         "одиннадцать", "двенадцать", "тринадцать", "четырнадцать", "пятнадцать", "шестнадцать",
         "семнадцать", "восемнадцать", "девятнадцать"]
_TENS = {20: "двадцать", 30: "тридцать", 40: "сорок", 50: "пятьдесят", 60: "шестьдесят", 70: "семьдесят",
         80: "восемьдесят", 90: "девяносто"}
_HUNDREDS = {100: "сто", 200: "двести", 300: "триста", 400: "четыреста", 500: "пятьсот", 600: "шестьсот",
             700: "семьсот", 800: "восемьсот", 900: "девятьсот"}
#: The group words: (one, few, many) file names.
THOUSANDS = ("digits/thousand", "digits/thousands-i", "digits/thousands")
MILLIONS = ("digits/million", "digits/million-a", "digits/millions")
BILLIONS = ("volna/milliard", "volna/milliarda", "volna/milliardov")
_GROUP_TEXTS = {"digits/thousand": "тысяча", "digits/thousands-i": "тысячи", "digits/thousands": "тысяч",
                "digits/million": "миллион", "digits/million-a": "миллиона", "digits/millions": "миллионов",
                "volna/milliard": "миллиард", "volna/milliarda": "миллиарда", "volna/milliardov": "миллиардов"}

_DAYS = ["первого", "второго", "третьего", "четвёртого", "пятого", "шестого", "седьмого", "восьмого", "девятого",
         "десятого", "одиннадцатого", "двенадцатого", "тринадцатого", "четырнадцатого", "пятнадцатого",
         "шестнадцатого", "семнадцатого", "восемнадцатого", "девятнадцатого", "двадцатого"]
_DAYS += [f"двадцать {d}" for d in _DAYS[:9]] + ["тридцатого", "тридцать первого"]
_MONTHS = ["января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
           "ноября", "декабря"]


def plural_form(n: int) -> PluralForm:
    """Russian plural category of ``n``: 1, 21 → one; 2–4, 22 → few; 0, 5–20, 11–14 → many."""
    if n % 10 == 1 and n % 100 != 11:
        return "one"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return "few"
    return "many"


def _pick(words: tuple[str, str, str], n: int) -> str:
    return words[("one", "few", "many").index(plural_form(n))]


def _below_thousand(n: int, feminine: bool) -> list[str]:
    out: list[str] = []
    if n >= 100:
        out.append(f"digits/{n - n % 100}")
        n %= 100
    if n >= 20:
        out.append(f"digits/{n - n % 10}")
        n %= 10
    if n:
        out.append(f"digits/{n}f" if feminine and n in (1, 2) else f"digits/{n}")
    return out


def number_prompts(n: int, *, feminine: bool = False) -> list[str]:
    """``n`` (0 ≤ n < 10¹²) as digit files: ``2_147_483_648`` → ``digits/2``, ``volna/milliarda``,
    ``digits/100``, ``digits/40``, ``digits/7``, ``digits/millions``, … ``digits/8``."""
    if not 0 <= n < MAX_SAYABLE:
        raise ValueError(f"{n} cannot be said (0 to {MAX_SAYABLE - 1})")
    if n == 0:
        return ["digits/0"]
    out: list[str] = []
    for size, words, fem in ((10**9, BILLIONS, False), (10**6, MILLIONS, False), (10**3, THOUSANDS, True)):
        group, n = divmod(n, size)
        if group:
            out += [*_below_thousand(group, fem), _pick(words, group)]
    return out + _below_thousand(n, feminine)


def amount_prompts(roubles: int, kopecks: int, rouble_units: tuple[str, str, str],
                   kopeck_units: tuple[str, str, str]) -> list[str]:
    """«1 234 рубля 50 копеек» as files; kopecks alone when there are no roubles; «0 рублей»."""
    out: list[str] = []
    if roubles or not kopecks:
        out += [*number_prompts(roubles), _pick(rouble_units, roubles)]
    if kopecks:
        out += [*number_prompts(kopecks, feminine=True), _pick(kopeck_units, kopecks)]
    return out


def digit_prompts(text: str) -> list[str]:
    """An account number said digit by digit; the separators people write (``7701-123456``,
    spaces, dots, slashes) are not said. ``ValueError`` when anything else is in it."""
    digits = re.sub(r"[\s\-./]", "", text)
    if not re.fullmatch(r"[0-9]{1,40}", digits):
        raise ValueError(f"{text!r} is not digits")
    return [f"digits/{d}" for d in digits]


def parse_date(value: object) -> date:
    """``25.12.2026``, ``2026-12-25`` (or a datetime's date) → a date; ``ValueError`` otherwise."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    for fmt in ("%d.%m.%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{value!r} is not a date (DD.MM.YYYY or YYYY-MM-DD)")


def date_prompts(day: date) -> list[str]:
    """«двадцать пятого декабря»: ``volna/date/day-25``, ``volna/date/month-12``."""
    return [f"volna/date/day-{day.day:02d}", f"volna/date/month-{day.month:02d}"]


def speech_prompts() -> dict[str, str]:
    """Every file the functions above can name, with what it says (for ``scenarios prompts``)."""
    texts: dict[str, str] = {f"digits/{n}": _ONES[n] for n in range(20)}
    texts |= {"digits/1f": "одна", "digits/2f": "две"}
    texts |= {f"digits/{n}": word for n, word in (_TENS | _HUNDREDS).items()}
    texts |= _GROUP_TEXTS
    texts |= {f"volna/date/day-{i + 1:02d}": word for i, word in enumerate(_DAYS)}
    texts |= {f"volna/date/month-{i + 1:02d}": word for i, word in enumerate(_MONTHS)}
    return texts
