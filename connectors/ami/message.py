"""AMI wire codec: bytes → messages and actions → bytes. Pure, no I/O; the session wraps it.

Asterisk's Manager Interface is line based: one banner line per connection
(``Asterisk Call Manager/11.0.0``), then messages made of ``Key: Value`` lines and ended
by an empty line. The wire uses CRLF; a bare LF is accepted too (captured transcripts,
hand-written fixtures). A message is a plain ``dict[str, str]`` keyed by the header names as
Asterisk spells them (``Uniqueid``, ``Cause-txt``); a header that occurs twice (``ChanVariable``,
``Output``) has its values joined with ``"\\n"`` (values never hold a newline).

Why our own parser and not panoramisk's (``AMIProtocol.data_received`` + ``Message.from_line``):
panoramisk decodes every chunk, re-splits the whole pending text, builds a case-insensitive dict
per message (a ``lower()`` per header on every set and get) and raises ``KeyError`` inside
``data_received`` for an ``Originate`` without ``Async`` (dropping the connection). This one
decodes each complete block once, builds a plain dict in one C-level pass when every line is
well formed, counts malformed lines instead of failing, and bounds the buffer — see
``load/bench_ami.py`` for the two side by side.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from engine.errors import ProtocolError

Message = dict[str, str]

BANNER_PREFIX = "Asterisk Call Manager/"
_BANNER_BYTES = BANNER_PREFIX.encode()
_KEY = re.compile(r"[A-Za-z0-9_\-]{1,64}")


class AmiParser:
    """Feed bytes as they arrive; get back the complete messages.

    ``banner`` is the first line when it is Asterisk's banner. ``malformed`` counts lines that
    were not ``Key: Value`` (skipped, the message is kept). A peer that sends more than
    ``max_message_bytes`` without ending a message raises :class:`ProtocolError` (the session
    drops the connection and reconnects).
    """

    __slots__ = ("_buf", "_want_banner", "banner", "malformed", "max_message_bytes", "messages")

    def __init__(self, *, max_message_bytes: int = 1 << 20, expect_banner: bool = True) -> None:
        self._buf = b""
        self._want_banner = expect_banner
        self.banner: str | None = None
        self.malformed = 0
        self.messages = 0
        self.max_message_bytes = max_message_bytes

    def feed(self, data: bytes) -> list[Message]:
        buf = self._buf + data if self._buf else data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        if self._want_banner:
            nl = buf.find(b"\n")
            if nl < 0:
                self._keep(buf)
                return []
            self._want_banner = False
            if buf.startswith(_BANNER_BYTES):
                self.banner = buf[:nl].decode("utf-8", "replace").strip()
                buf = buf[nl + 1 :]
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._keep(buf)
            return []
        self._keep(buf[end + 2 :])
        out: list[Message] = []
        for block in buf[:end].decode("utf-8", "replace").split("\n\n"):
            if not block:
                continue
            lines = block.split("\n")
            try:
                msg: Message = dict(line.split(": ", 1) for line in lines)
                if len(msg) != len(lines) or "" in msg:
                    msg = self._slow(lines)
            except ValueError:
                msg = self._slow(lines)
            if msg:
                out.append(msg)
        self.messages += len(out)
        return out

    def _keep(self, rest: bytes) -> None:
        if len(rest) > self.max_message_bytes:
            self._buf = b""
            raise ProtocolError(f"AMI message longer than {self.max_message_bytes} bytes")
        self._buf = rest

    def _slow(self, lines: list[str]) -> Message:
        """Lines with a missing space after the colon, blank lines, repeated headers, junk."""
        msg: Message = {}
        for line in lines:
            key, sep, value = line.partition(": ")
            if not sep:
                key, sep, value = line.partition(":")
                value = value.strip()
            if not sep or not key:  # no colon at all, or no name before it (": x")
                if line.strip():
                    self.malformed += 1
                continue
            if key in msg:
                msg[key] = f"{msg[key]}\n{value}"
            else:
                msg[key] = value
        return msg


def serialize(action: str, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """``Action: <action>`` then ``headers`` in order, CRLF line ends, a blank line at the end.

    A key that is not a plain token or a value holding CR/LF raises ``ValueError``: a task var
    must never be able to inject a header or a whole action.
    """
    parts = [f"Action: {action}"]
    for key, value in headers:
        if not _KEY.fullmatch(key):  # fullmatch: `$` would let a trailing newline through
            raise ValueError(f"bad AMI header name {key!r}")
        if "\r" in value or "\n" in value:
            raise ValueError(f"AMI header {key} holds a line break")
        parts.append(f"{key}: {value}")
    parts.append("\r\n")
    return "\r\n".join(parts).encode("utf-8")


def serialize_message(headers: Iterable[tuple[str, str]]) -> bytes:
    """Any message (a server's response or event) — for fakes and round-trip tests."""
    return ("\r\n".join(f"{k}: {v}" for k, v in headers) + "\r\n\r\n").encode("utf-8")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ARG_SPECIAL = re.compile(r'([\\,"])')
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}")


def variable(name: str, value: object) -> str:
    """One ``Variable`` header value, ``NAME=value``, safe for Asterisk's argument splitter.

    Asterisk splits a ``Variable`` header on commas (``AST_STANDARD_APP_ARGS``: quotes and
    backslashes are removed as it goes), so ``\\``, ``,`` and ``"`` are backslash-escaped and
    control characters are dropped. ``None`` becomes the empty string, booleans ``1``/``0``.
    """
    if not _VAR_NAME.fullmatch(name):
        raise ValueError(f"bad channel variable name {name!r}")
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "1" if value else "0"
    else:
        text = str(value)
    text = _ARG_SPECIAL.sub(r"\\\1", _CONTROL.sub("", text))
    return f"{name}={text}"
