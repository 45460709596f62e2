"""Task files as planners export them: lines of bytes into task dicts.

JSON Lines, or CSV the way Russian spreadsheets and 1C write it:

* **Encoding**: UTF-8 (a BOM is dropped) or Windows-1251. ``auto`` reads UTF-8 until a line is
  not UTF-8 and no earlier line had a multi-byte UTF-8 character: from there the whole file is
  read as Windows-1251 (Russian Excel's "CSV" is Windows-1251). A file that mixed both is
  refused line by line. Give ``--encoding`` to skip the guess.
* **Separator** (CSV): ``,``, ``;`` (Russian Excel, where the comma is the decimal separator)
  or a tab, sniffed from the header line unless given with ``--delimiter``.
* **Line ends**: LF or CRLF. A quoted CSV field may not span lines.
* Decimal commas (``12 345,67``) are read where amounts are read (:mod:`engine.domain.amounts`),
  numeric region codes by the task model, ``UTC+3`` / ``МСК+4`` zones by
  :mod:`engine.domain.zone_names`.

CSV columns are the task's fields; ``var_<name>`` columns become ``vars``, ``cascade`` is
``sms|viber``. Every fault is an :class:`IntakeError` for that line.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Literal

from engine.errors import IntakeError

MAX_LINE_BYTES = 64 * 1024
Encoding = Literal["auto", "utf-8", "cp1251"]
ENCODINGS: tuple[Encoding, ...] = ("auto", "utf-8", "cp1251")
#: ``auto`` or one of these separators (``\t`` may also be written ``tab``).
DELIMITERS = (",", ";", "\t")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class FileFormat:
    kind: Literal["jsonl", "csv"] = "jsonl"
    encoding: Encoding = "auto"
    #: ``auto``, or the CSV separator.
    delimiter: str = "auto"

    def __post_init__(self) -> None:
        if self.kind not in ("jsonl", "csv"):
            raise IntakeError(f"unknown format {self.kind!r} (jsonl or csv)")
        if self.encoding not in ENCODINGS:
            raise IntakeError(f"unknown encoding {self.encoding!r} ({', '.join(ENCODINGS)})")
        if self.delimiter != "auto" and self.delimiter not in DELIMITERS:
            raise IntakeError(f"unknown CSV separator {self.delimiter!r} (',', ';', tab or auto)")


def delimiter_arg(value: str) -> str:
    """A command line's ``--delimiter``: ``,``, ``;``, ``tab`` (or a real tab) or ``auto``."""
    return "\t" if value in ("tab", "\\t") else value


class _Decoder:
    """Bytes to text, one line at a time, with the encoding guess described above."""

    def __init__(self, encoding: Encoding) -> None:
        self.encoding: Encoding = encoding
        self._first = True
        #: A line had a multi-byte UTF-8 character: the file is UTF-8, no guess any more.
        self._utf8_seen = False

    def decode(self, raw: bytes) -> str:
        if self._first:
            self._first = False
            if raw.startswith(_BOM):
                raw = raw[len(_BOM):]
                if self.encoding == "auto":
                    self.encoding = "utf-8"
        if self.encoding == "cp1251":
            # Every byte but 0x98 is a character in Windows-1251.
            try:
                return raw.decode("cp1251")
            except UnicodeDecodeError as exc:
                raise IntakeError(f"not Windows-1251 (byte {exc.start})") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if self.encoding == "auto" and not self._utf8_seen:
                self.encoding = "cp1251"
                return self.decode(raw)
            raise IntakeError(f"not UTF-8 (byte {exc.start})") from None
        if not self._utf8_seen and not text.isascii():
            self._utf8_seen = True
            if self.encoding == "auto":
                self.encoding = "utf-8"
        return text


class _CsvRows:
    """CSV lines to dicts, once the header named the columns (and showed the separator)."""

    def __init__(self, delimiter: str, key_column: str = "task_id") -> None:
        self.delimiter = delimiter
        self.header: list[str] | None = None
        #: The column every file of this kind has (the planner's portfolio: ``debtor_id``).
        self.key_column = key_column

    def parse(self, line: str) -> dict[str, Any] | None:
        if self.header is None:
            if self.delimiter == "auto":
                self.delimiter = _sniff(line)
            self.header = [h.strip() for h in self._row(line)]
            if self.key_column not in self.header:
                raise IntakeError(f"CSV header has no {self.key_column} column"
                                  + ("" if len(self.header) > 1 else f" (separated by {self.delimiter!r}?)"))
            return None
        row = self._row(line)
        if len(row) != len(self.header):
            raise IntakeError(f"{len(row)} columns where the header has {len(self.header)}")
        obj: dict[str, Any] = {}
        variables: dict[str, Any] = {}
        for name, value in zip(self.header, row, strict=True):
            value = value.strip()
            if name.startswith("var_"):
                variables[name[4:]] = value
            elif value == "":
                continue
            elif name in ("cascade", "phones"):
                obj[name] = [c for c in value.split("|") if c]
            else:
                obj[name] = value
        obj["vars"] = variables
        return obj

    def _row(self, line: str) -> list[str]:
        try:
            return next(csv.reader(io.StringIO(line), delimiter=self.delimiter))
        except (csv.Error, StopIteration) as exc:
            raise IntakeError(f"not a CSV line: {exc}") from None


def _sniff(header: str) -> str:
    """The separator of a header line: the one of ``, ; tab`` it has most of, outside quotes."""
    counts = {d: 0 for d in DELIMITERS}
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


class TaskLines:
    """One file's lines into task dicts (None for a blank line or the CSV header)."""

    def __init__(self, fmt: FileFormat, *, key_column: str = "task_id") -> None:
        self.format = fmt
        self._decoder = _Decoder(fmt.encoding)
        self._csv = _CsvRows(fmt.delimiter, key_column) if fmt.kind == "csv" else None

    @property
    def header_seen(self) -> bool:
        return self._csv is None or self._csv.header is not None

    def parse(self, raw: bytes) -> dict[str, Any] | None:
        if len(raw) > MAX_LINE_BYTES:
            raise IntakeError(f"line is longer than {MAX_LINE_BYTES} bytes")
        text = self._decoder.decode(raw).strip()
        if not text:
            return None
        if self._csv is not None:
            return self._csv.parse(text)
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IntakeError(f"malformed JSON: {exc.msg} at column {exc.colno}") from None
        if not isinstance(obj, dict):
            raise IntakeError("a task line is a JSON object")
        return obj
