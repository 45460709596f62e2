"""Property tests of the AMI wire codec (``connectors/ami/message.py``): whatever a peer sends, in
whatever slices, the parser returns messages or raises our ``ProtocolError`` — never another
exception, never a hang — and nothing we serialize can smuggle in a second header or action."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.ami.message import AmiParser, Message, serialize, serialize_message, variable
from engine.errors import ProtocolError

FAST = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_token = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=10)
#: Value characters: ASCII, separators, Cyrillic, a non-BMP one, controls other than CR/LF.
_CHARS = "aZ09 :,;=-_.\t\x00\x0b\x1b\x7f\u00e9\u0416\u0436\u20ac\u2028\U0001f600"
_value = st.text(_CHARS, max_size=16)
#: Lines a broken or hostile peer may send: no colon, a colon without space, blank, binary.
_junk = st.one_of(
    st.text(_CHARS.replace(":", ""), max_size=12),
    st.builds(lambda k, v: f"{k}:{v}", _token, _value),
    st.sampled_from([":", ": x", " ", "", "\t"]),
)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


def _feed(parser: AmiParser, pieces: list[bytes]) -> list[Message]:
    got: list[Message] = []
    for piece in pieces:
        got += parser.feed(piece)
    return got


def _well_formed(messages: list[Message]) -> None:
    for msg in messages:
        assert isinstance(msg, dict) and msg
        for key, value in msg.items():
            assert isinstance(key, str) and isinstance(value, str)
            assert key and "\n" not in key and "\r" not in key


@FAST
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6), st.booleans())
def test_any_bytes_in_any_slices(data: bytes, cuts: list[int], banner: bool) -> None:
    parser = AmiParser(max_message_bytes=128, expect_banner=banner)
    try:
        messages = _feed(parser, _chunks(data, cuts))
    except ProtocolError as exc:
        assert "longer than 128 bytes" in str(exc)
        return
    _well_formed(messages)
    assert parser.malformed >= 0


@FAST
@given(
    st.lists(st.lists(st.one_of(st.tuples(_token, _value), _junk), min_size=1, max_size=5), min_size=1, max_size=3),
    st.sampled_from([b"\r\n", b"\n"]),
    st.lists(st.integers(0, 600), max_size=6),
)
def test_messages_with_junk_lines_keep_their_good_headers(
    blocks: list[list[tuple[str, str] | str]], eol: bytes, cuts: list[int]
) -> None:
    """Junk lines are skipped and counted; every good ``Key: Value`` line arrives; the next message
    starts clean whatever the previous one held."""
    wire = b"Asterisk Call Manager/11.0.0" + eol
    for block in blocks:
        lines = [f"{item[0]}: {item[1]}" if isinstance(item, tuple) else item for item in block]
        wire += eol.join(line.encode() for line in lines) + eol + eol
    parser = AmiParser()
    messages = _feed(parser, _chunks(wire, cuts))
    _well_formed(messages)
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    good = [[item for item in block if isinstance(item, tuple)] for block in blocks]
    # A block of junk only may yield nothing; blank junk lines may split a block in two: so compare
    # the good headers in order, across messages.
    seen = {(k, v) for msg in messages for k, vs in msg.items() for v in vs.split("\n")}
    for key, value in (kv for block in good for kv in block):
        assert (key, value) in seen


@FAST
@given(_token, st.lists(st.tuples(st.text(max_size=8), st.text(max_size=16)), max_size=4))
def test_serialize_makes_one_action_or_refuses(action: str, headers: list[tuple[str, str]]) -> None:
    """A task variable can never add a header or a second action: ``serialize`` refuses what it
    cannot write as one line, and what it writes parses back as exactly the headers given."""
    try:
        wire = serialize(action, headers)
    except ValueError:
        assert any(not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", k) or "\r" in v or "\n" in v for k, v in headers)
        return
    parsed = AmiParser(expect_banner=False).feed(wire)
    assert len(parsed) == 1
    expected: dict[str, list[str]] = {"Action": [action]}
    for key, value in headers:
        expected.setdefault(key, []).append(value)
    assert {k: v.split("\n") for k, v in parsed[0].items()} == expected


@FAST
@given(st.lists(st.tuples(_token, _value), min_size=1, max_size=6, unique_by=lambda kv: kv[0]))
def test_round_trip_as_a_server_writes_it(headers: list[tuple[str, str]]) -> None:
    assert AmiParser(expect_banner=False).feed(serialize_message(headers)) == [dict(headers)]


_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


@FAST
@given(st.text(max_size=20),
       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40)))
def test_variable_is_one_safe_argument(name: str, value: object) -> None:
    """``Variable: NAME=value`` survives Asterisk's argument splitter as one argument, whatever the
    task's data: no control characters, every ``,`` ``"`` ``\\`` escaped."""
    try:
        out = variable(name, value)
    except ValueError:
        assert not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,79}", name)
        return
    assert out.startswith(name + "=")
    text = out[len(name) + 1 :]
    assert not re.search(r"[\x00-\x1f\x7f]", text)
    assert not re.search(r'(?<!\\)(?:\\\\)*[,"]', text)  # every comma and quote is escaped
    serialize("Originate", [("Variable", out)])  # and it is one header line
    expected = "" if value is None else ("1" if value else "0") if isinstance(value, bool) else str(value)
    assert _UNESCAPE.sub(r"\1", text) == re.sub(r"[\x00-\x1f\x7f]", "", expected)


# ---- what the properties found (each was a fault before its fix) --------------------------------


def test_a_name_with_a_trailing_newline_is_refused() -> None:
    """``$`` also matches before a final ``\n``: ``serialize("Ping", [("A\n", "v")])`` wrote
    ``A\n: v`` (a bare line break inside the action) and ``variable("A\n", 1)`` returned
    ``A\n=1``. The names are matched whole now."""
    with pytest.raises(ValueError):
        serialize("Ping", [("A\n", "v")])
    with pytest.raises(ValueError):
        variable("A\n", 1)


def test_a_line_without_a_name_is_malformed() -> None:
    """A line ``": x"`` used to become a header named ``""``; it is skipped and counted as malformed,
    on the fast path and on the slow one."""
    parser = AmiParser(expect_banner=False)
    assert parser.feed(b"Event: X\r\n: x\r\n\r\n") == [{"Event": "X"}]
    assert parser.feed(b"Event: Y\r\n: x\r\nBad line\r\n\r\n") == [{"Event": "Y"}]
    assert parser.malformed == 3
