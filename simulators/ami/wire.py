"""The simulator's own AMI codec (it never imports ``connectors``: a codec bug must not hide by
sitting on both ends of the wire). Actions keep repeated headers (``Variable``) in order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Headers = list[tuple[str, str]]


class ActionReader:
    """Client → server bytes → actions (lists of ``(key, value)``); LF or CRLF line ends."""

    def __init__(self, max_bytes: int = 1 << 20) -> None:
        self._buf = b""
        self.max_bytes = max_bytes
        self.malformed = 0

    def feed(self, data: bytes) -> list[Headers]:
        self._buf = (self._buf + data).replace(b"\r\n", b"\n")
        *blocks, self._buf = self._buf.split(b"\n\n")
        if len(self._buf) > self.max_bytes:
            raise ValueError("action too long")
        out: list[Headers] = []
        for block in blocks:
            headers: Headers = []
            for line in block.decode("utf-8", "replace").split("\n"):
                if not line.strip():
                    continue
                key, sep, value = line.partition(":")
                if not sep:
                    self.malformed += 1
                    continue
                headers.append((key.strip(), value.strip()))
            if headers:
                out.append(headers)
        return out


def get(headers: Sequence[tuple[str, str]], key: str, default: str = "") -> str:
    lowered = key.lower()
    for k, v in headers:
        if k.lower() == lowered:
            return v
    return default


def get_all(headers: Sequence[tuple[str, str]], key: str) -> list[str]:
    lowered = key.lower()
    return [v for k, v in headers if k.lower() == lowered]


def encode(headers: Iterable[tuple[str, str]]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("utf-8")


def split_variables(values: Iterable[str]) -> dict[str, str]:
    """``Variable`` headers → dict, split on unescaped commas like Asterisk's argument parser."""
    out: dict[str, str] = {}
    for value in values:
        items, cur, i = [], [], 0
        while i < len(value):
            ch = value[i]
            if ch == "\\" and i + 1 < len(value):
                cur.append(value[i + 1])
                i += 2
                continue
            if ch == '"':
                i += 1
                continue
            if ch == ",":
                items.append("".join(cur))
                cur = []
            else:
                cur.append(ch)
            i += 1
        items.append("".join(cur))
        for item in items:
            name, sep, val = item.partition("=")
            if sep and name:
                out[name.strip()] = val
    return out
