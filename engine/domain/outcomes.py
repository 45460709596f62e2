"""The one outcome vocabulary shared by all channels (ARCHITECTURE.md, "Outcomes")."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    IVR = "ivr"
    SMS = "sms"
    VIBER = "viber"
    WHATSAPP = "whatsapp"


MESSAGE_CHANNELS = frozenset({Channel.SMS, Channel.VIBER, Channel.WHATSAPP})


class Outcome(StrEnum):
    # call
    ANSWERED = "answered"
    #: Answered, but a prompt that discloses the debt failed to play: the debtor did not hear it all.
    ANSWERED_INCOMPLETE = "answered_incomplete"
    ANSWERED_MACHINE = "answered_machine"
    #: Answered by someone who did not confirm being the debtor: nothing was disclosed.
    WRONG_PARTY = "wrong_party"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    CONGESTION = "congestion"
    INVALID_NUMBER = "invalid_number"
    FAILED = "failed"
    # message
    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    READ = "read"
    UNDELIVERED = "undelivered"
    EXPIRED = "expired"
    NOT_SUBSCRIBED = "not_subscribed"
    # debtor-initiated
    INBOUND_CALL = "inbound_call"
    #: An MO SMS or a messenger message from the debtor (its text in the record's data).
    INBOUND_MESSAGE = "inbound_message"
    # engine
    SKIPPED_STOPLIST = "skipped_stoplist"
    SKIPPED_CAP = "skipped_cap"
    SKIPPED_PHONE_INVALID = "skipped_phone_invalid"
    WINDOW_MISSED = "window_missed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"
    ERROR = "error"


#: Outcomes that never count towards a debtor's caps, whatever a scenario says (not a contact with the debtor).
NEVER_COUNTED = frozenset({Outcome.WRONG_PARTY})

#: Outcomes produced by the engine itself, never by a connector.
ENGINE_OUTCOMES = frozenset(
    {
        Outcome.SKIPPED_STOPLIST,
        Outcome.SKIPPED_CAP,
        Outcome.SKIPPED_PHONE_INVALID,
        Outcome.WINDOW_MISSED,
        Outcome.CANCELLED,
    }
)

#: Outcomes that do not say whether the contact happened: the peer took the message but never
#: reported its fate before the acceptance timed out, or the send's answer was lost. Such an
#: attempt keeps its cap slot whatever the scenario counts: it may have reached the debtor, and
#: its delivery may still be reported (a Viber delivery hours later). Found by the chaos run's
#: caps verdict, which counts what the peers say reached each number.
FATE_UNKNOWN = frozenset({Outcome.ACCEPTED, Outcome.UNKNOWN})
