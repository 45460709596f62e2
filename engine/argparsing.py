"""How every command line of ours refuses bad input: one line naming what is wrong, exit 2, never
usage text or a traceback (``volna …``, ``volna api``, ``volna token``, ``volna demo``)."""

from __future__ import annotations

import argparse
from datetime import date
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """argparse, with a refusal as one line and exit 2 (``volna: …``), not usage text."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("volna").strip()
        self.exit(2, f"volna: {command + ': ' if command else ''}{message}\n")


def day_arg(value: str) -> date:
    """A ``YYYY-MM-DD`` argument (``2026-13-01`` is refused, naming it)."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a day (YYYY-MM-DD)") from None




def refusal(exc: BaseException) -> str:
    """An error as the one line a command prints: ``volna: …`` (a list of problems joined by ``;``)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"volna: {lines[0]} {'; '.join(lines[1:])}"
    return "volna: " + "; ".join(lines)
