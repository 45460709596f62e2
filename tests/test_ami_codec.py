"""AMI codec, outcome mapping and call correlation, fed with real Asterisk 22 wire captures.

The transcripts are read in place from ``/work/shared/asterisk-22-transcripts`` (never copied).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.ami.calls import CallTracker, call_ids
from connectors.ami.message import AmiParser, Message, serialize, serialize_message, variable
from connectors.ami.outcomes import CAUSE_OUTCOMES, REASON_OUTCOMES, classify
from engine.domain.outcomes import Outcome
from engine.errors import ProtocolError

TRANSCRIPTS = Path(__file__).resolve().parents[2] / "shared" / "asterisk-22-transcripts"

#: What each capture must come out as (README.md beside the captures).
EXPECTED = {
    "7000": (Outcome.ANSWERED, "reason=4;cause=16", "Normal Clearing", "1"),
    "7001": (Outcome.BUSY, "reason=5;cause=17", "User busy", ""),
    "7002": (Outcome.NO_ANSWER, "reason=3;cause=19", "User alerting, no answer", ""),
    "7003": (Outcome.CONGESTION, "reason=8;cause=34", "Circuit/channel congestion", ""),
    "7004": (Outcome.ANSWERED, "reason=4;cause=16", "Normal Clearing", ""),
    "7005": (Outcome.ANSWERED, "reason=4;cause=16", "Normal Clearing", ""),
    "9999": (Outcome.FAILED, "reason=0;cause=0", "Unknown", ""),
}


def _transcript(name: str) -> bytes:
    return (TRANSCRIPTS / f"{name}.txt").read_bytes() + b"\n"


def _messages(name: str) -> list[Message]:
    parser = AmiParser()
    msgs = parser.feed(_transcript(name))
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert parser.malformed == 0
    return msgs


# ---- parser ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parser_reads_transcript(name: str) -> None:
    msgs = _messages(name)
    assert msgs[0] == {"Response": "Success", "Message": "Authentication accepted"}
    assert msgs[1] == {"Response": "Success", "ActionID": f"oa-raw-{name}", "Message": "Originate successfully queued"}
    events = [m["Event"] for m in msgs[2:]]
    assert events[0] == "Newchannel" and "OriginateResponse" in events and events.count("Hangup") == 2
    assert all("Privilege" in m for m in msgs[2:])
    origin = next(m for m in msgs if m.get("Event") == "OriginateResponse")
    assert origin["ActionID"] == f"oa-raw-{name}"
    if name == "9999":
        assert origin["Uniqueid"] == "raw-9999" and origin["Response"] == "Failure"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parser_chunking_and_crlf_do_not_matter(name: str) -> None:
    whole = _messages(name)
    crlf = _transcript(name).replace(b"\n", b"\r\n")
    rng = random.Random(name)
    parser = AmiParser()
    got: list[Message] = []
    i = 0
    while i < len(crlf):
        n = rng.randint(1, 64)
        got += parser.feed(crlf[i : i + n])
        i += n
    assert got == whole
    assert parser.banner == "Asterisk Call Manager/11.0.0"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parser_agrees_with_panoramisk(name: str) -> None:
    """A differential check against panoramisk's own parser (``Message.from_line``)."""
    from panoramisk.message import Message as PanoMessage

    text = _transcript(name).decode()
    blocks = [b.strip() for b in text.split("\n", 1)[1].replace("\n", "\r\n").split("\r\n\r\n") if b.strip()]
    # panoramisk's dict also holds the body of a "Response: Follows" as "content".
    theirs = [{k: v for k, v in PanoMessage.from_line(b).items() if k != "content"} for b in blocks]
    assert _messages(name) == theirs


def test_parser_keeps_going_after_junk() -> None:
    parser = AmiParser()
    msgs = parser.feed(
        b"Asterisk Call Manager/11.0.0\r\n"
        b"Event: Hangup\r\nthis is not a header\r\nUniqueid:x1\r\nCause: 16\r\n\r\n"
        b"\r\n\r\n"
        b"Event: UserEvent\r\nChanVariable: A=1\r\nChanVariable: B=2\r\n\r\n"
        b"Response: Pong\r\nActionID: p\r\n\r\nEvent: Part"
    )
    assert msgs == [
        {"Event": "Hangup", "Uniqueid": "x1", "Cause": "16"},
        {"Event": "UserEvent", "ChanVariable": "A=1\nB=2"},
        {"Response": "Pong", "ActionID": "p"},
    ]
    assert parser.malformed == 1
    assert parser.feed(b"ial\r\n\r\n") == [{"Event": "Partial"}]


def test_parser_without_banner_and_utf8_split() -> None:
    parser = AmiParser()
    data = "Response: Success\r\nMessage: Привет\r\n\r\n".encode()
    cut = data.index("и".encode()) + 1  # in the middle of a two-byte character
    assert parser.feed(data[:cut]) == []
    assert parser.feed(data[cut:]) == [{"Response": "Success", "Message": "Привет"}]
    assert parser.banner is None


def test_parser_bounds_a_message_without_end() -> None:
    parser = AmiParser(max_message_bytes=1000)
    with pytest.raises(ProtocolError):
        parser.feed(b"Asterisk Call Manager/11.0.0\r\n" + b"Key: value\r\n" * 200)


_token = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)
_value = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40).map(
    str.strip
)


@given(st.lists(st.tuples(_token, _value), min_size=1, max_size=12, unique_by=lambda kv: kv[0]),
       st.integers(1, 50))
def test_round_trip(headers: list[tuple[str, str]], chunk: int) -> None:
    wire = serialize_message(headers)
    parser = AmiParser(expect_banner=False)
    got: list[Message] = []
    for i in range(0, len(wire), chunk):
        got += parser.feed(wire[i : i + chunk])
    assert got == [dict(headers)]


def test_serialize_refuses_injection() -> None:
    assert serialize("Ping", [("ActionID", "a1")]) == b"Action: Ping\r\nActionID: a1\r\n\r\n"
    with pytest.raises(ValueError):
        serialize("Originate", [("Variable", "X=1\r\nAction: Hangup")])
    with pytest.raises(ValueError):
        serialize("Originate", [("Bad: Key", "1")])


def test_variable_escaping() -> None:
    assert variable("VOLNA_AMOUNT", 1234.5) == "VOLNA_AMOUNT=1234.5"
    assert variable("VOLNA_CONV_OK", True) == "VOLNA_CONV_OK=1"
    assert variable("VOLNA_X", None) == "VOLNA_X="
    assert variable("VOLNA_ADDR", 'ул. Ленина, д. 1 "А"\\\r\n') == r'VOLNA_ADDR=ул. Ленина\, д. 1 \"А\"\\'
    with pytest.raises(ValueError):
        variable("BAD-NAME", "x")


# ---- outcome tables --------------------------------------------------------------------------


@pytest.mark.parametrize(("reason", "expected"), sorted(REASON_OUTCOMES.items()))
def test_every_reason_maps_with_code_kept(reason: int, expected: Outcome) -> None:
    v = classify(reason=reason, cause=0, cause_txt="Unknown")
    assert v.outcome is expected
    assert v.provider_code == f"reason={reason};cause=0"
    assert v.provider_text == "Unknown"


@pytest.mark.parametrize(("cause", "expected"), sorted(CAUSE_OUTCOMES.items()))
def test_every_cause_maps_with_code_kept(cause: int, expected: Outcome) -> None:
    for reason in (0, 1):  # the reason says "failed": the cause decides
        v = classify(reason=reason, cause=cause, cause_txt=f"txt{cause}")
        assert (v.outcome, v.provider_code, v.provider_text) == (expected, f"reason={reason};cause={cause}",
                                                                 f"txt{cause}")


def test_cause_refinements() -> None:
    assert classify(reason=8, cause=1).outcome is Outcome.INVALID_NUMBER  # 404 reported as congestion
    assert classify(reason=5, cause=21).outcome is Outcome.REJECTED  # 603 Decline reported as busy
    assert classify(reason=3, cause=16).outcome is Outcome.NO_ANSWER  # the reason decides
    assert classify(reason=1, cause=16).outcome is Outcome.FAILED  # 16 before an answer says nothing
    assert classify(reason=1, cause=127).outcome is Outcome.FAILED  # any other cause
    assert classify(reason=4, cause=16, amd="MACHINE").outcome is Outcome.ANSWERED_MACHINE
    assert classify(reason=None, cause=16, answered=True).provider_code == "cause=16"
    assert classify(reason=None, cause=None).outcome is Outcome.FAILED


# ---- correlation from real captures ----------------------------------------------------------


def _track(name: str, msgs: list[Message]) -> tuple[list, CallTracker]:
    tracker = CallTracker(prefix="raw", settle_s=1.0)
    tracker.register(f"raw-{name}", f"raw-{name}-2", f"oa-raw-{name}", now=0.0, deadline=100.0)
    done = [f for f in (tracker.handle(m, 1.0) for m in msgs) if f is not None]
    done += tracker.tick(3.0)[0]
    return done, tracker


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_transcript_outcome(name: str) -> None:
    done, tracker = _track(name, _messages(name))
    outcome, code, text, dtmf = EXPECTED[name]
    assert len(done) == 1
    assert (done[0].outcome, done[0].provider_code, done[0].provider_text) == (outcome, code, text)
    assert done[0].data["dtmf"] == dtmf
    assert not tracker.calls


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_transcript_outcome_in_any_order(name: str) -> None:
    """OriginateResponse, Newstate, DialEnd and Hangup come in varying order on a real Asterisk."""
    msgs = _messages(name)
    rng = random.Random(f"order-{name}")
    movable = {"OriginateResponse", "Newstate", "DialEnd", "Hangup", "UserEvent"}
    for _ in range(20):
        head = [m for m in msgs if m.get("Event") == "Newchannel"]
        rest = [m for m in msgs if m.get("Event") in movable]
        rng.shuffle(rest)
        done, _ = _track(name, head + rest)
        assert len(done) == 1
        assert done[0].outcome is EXPECTED[name][0]


def test_failed_originate_found_by_action_id_only() -> None:
    """No channel at all (e.g. an unknown endpoint): only OriginateResponse, ``Uniqueid: <unknown>``."""
    tracker = CallTracker()
    cid, other, aid = call_ids("w1:t1:1")
    tracker.register(cid, other, aid, now=0.0, deadline=60.0)
    done = tracker.handle({"Event": "OriginateResponse", "ActionID": aid, "Response": "Failure",
                           "Channel": "PJSIP/89160000000@trunk-a", "Reason": "0", "Uniqueid": "<unknown>"}, 0.1)
    assert done is not None and done.outcome is Outcome.FAILED and done.provider_code == "reason=0"
    # A straggler for the finished call is ignored.
    assert tracker.handle({"Event": "Hangup", "Uniqueid": cid, "Cause": "0"}, 0.2) is None


def test_call_ids_are_stable_and_distinct() -> None:
    a = call_ids("w1:t1:1")
    assert a == call_ids("w1:t1:1")
    assert a[0].startswith("volna-") and a[1] == a[0] + "-2" and a[2] == f"{a[0]}/w1:t1:1"
    assert call_ids("w1:t1:2")[0] != a[0]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_transcript_outcome_in_a_process_that_did_not_originate(name: str) -> None:
    """Another dispatcher's call: found by the ChannelId prefix and the ActionID's ChannelId part."""
    cid, other, aid = call_ids(f"w1:t{name}:1")
    renamed = []
    for msg in _messages(name):
        msg = {k: v.replace(f"oa-raw-{name}", aid).replace(f"raw-{name}-2", other).replace(f"raw-{name}", cid)
               for k, v in msg.items()}
        renamed.append(msg)
    tracker = CallTracker(settle_s=1.0)
    done = [f for f in (tracker.handle(m, 1.0) for m in renamed) if f is not None]
    done += tracker.tick(3.0)[0]
    outcome, code, text, dtmf = EXPECTED[name]
    assert len(done) == 1 and not done[0].call.own and done[0].call.call_id == cid
    assert (done[0].outcome, done[0].provider_code, done[0].provider_text) == (outcome, code, text)
    assert done[0].data["dtmf"] == dtmf
    assert not CallTracker(follow_foreign=False).handle(renamed[2], 1.0)
