"""Phone numbers: parse to E.164 and mask for logs.

Numbers are personal data: anything that leaves the process as text (logs,
error messages, metric labels) goes through :func:`mask`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache

import phonenumbers
from phonenumbers import timezone as pn_timezone

from engine.errors import IntakeError

DEFAULT_REGION = "RU"


def normalize(raw: str, default_region: str = DEFAULT_REGION) -> str:
    """``8 916 123-45-67`` → ``+79161234567``; raises :class:`IntakeError` for a non-number."""
    text = raw.strip()
    # Russian trunk prefix "8" is how most agencies' files write numbers.
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise IntakeError(f"phone is not a number ({exc.args[0] if exc.args else exc})") from None
    if not phonenumbers.is_valid_number(parsed):
        raise IntakeError("phone is not a valid number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=65536)
def candidate_zones(e164: str) -> tuple[str, ...]:
    """IANA zones ``phonenumbers`` gives for a number (all of +7's for a mobile)."""
    parsed = phonenumbers.parse(e164, None)
    zones = pn_timezone.time_zones_for_number(parsed)
    return tuple(sorted(z for z in zones if z != "Etc/Unknown"))


def mask(e164: str) -> str:
    """``+79161234567`` → ``+7916***4567``."""
    if len(e164) <= 8:
        return "***"
    return f"{e164[:5]}***{e164[-4:]}"


_PHONE_IN_TEXT = re.compile(r"\+?\d{10,15}")


def mask_text(text: str) -> str:
    """Mask anything in free text that looks like a full phone number."""
    return _PHONE_IN_TEXT.sub(lambda m: mask(m.group(0)), text)


def phone_hash(key: bytes, e164: str) -> bytes:
    """The keyed hash a phone is kept as once its clear form is gone (HMAC-SHA256): only a holder
    of ``key`` can tell whether a number is the one hashed."""
    return hmac.new(key, e164.encode(), hashlib.sha256).digest()
