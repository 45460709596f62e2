"""Campaign scenarios as data: ``scenarios/*.yaml`` validated by a pydantic schema.

A scenario says what to say on each channel (templates), what to do after each
outcome (retry later today, cascade to the next channel, stop), and which
outcomes count towards the debtor's contact caps.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.domain.ivr import IvrScript
from engine.domain.outcomes import NEVER_COUNTED, Channel, Outcome
from engine.domain.templates import check_template

CapClass = Literal["conversation", "message"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WhatsAppTemplate(_Model):
    name: str
    language: str = "ru"
    #: Task vars (by name) that fill the template's body parameters, in order.
    body_params: list[str] = Field(default_factory=list)


class Messages(_Model):
    sms: str | None = None
    viber: str | None = None
    whatsapp: WhatsAppTemplate | None = None
    #: The SMS an IVR menu sends when the debtor asks for the payment details.
    sms_details: str | None = None


class RetryRule(_Model):
    """After ``when`` outcomes, try the same channel again after ``delay_s`` (same day only).

    (Not ``on``: YAML 1.1 reads a bare ``on`` key as the boolean true.)
    """

    when: list[Outcome]
    delay_s: int = Field(ge=0)
    max_attempts: int = Field(ge=1, le=20)


class CascadeRule(_Model):
    """After ``when`` outcomes on ``from_channel`` (or no delivery within ``after_s``), go to ``to``."""

    from_channel: Channel = Field(alias="from")
    to: Channel
    when: list[Outcome]
    #: No delivery within this long after acceptance counts as a failure that cascades.
    after_s: int | None = Field(default=None, ge=1)


#: Outcomes that keep a cap slot used, by channel, unless a scenario says otherwise.
DEFAULT_COUNTED: dict[Channel, list[Outcome]] = {
    Channel.IVR: [Outcome.ANSWERED, Outcome.ANSWERED_INCOMPLETE, Outcome.ANSWERED_MACHINE, Outcome.UNKNOWN],
    Channel.SMS: [Outcome.ACCEPTED, Outcome.DELIVERED, Outcome.READ, Outcome.EXPIRED, Outcome.UNKNOWN],
    Channel.VIBER: [Outcome.DELIVERED, Outcome.READ, Outcome.UNKNOWN],
    Channel.WHATSAPP: [Outcome.DELIVERED, Outcome.READ, Outcome.UNKNOWN],
}


class Scenario(_Model):
    name: str
    title: str = ""
    description: str = ""
    #: How an IVR call of this scenario counts: a plain robocall is a voice message.
    ivr_cap_class: CapClass = "message"
    messages: Messages = Messages()
    #: The IVR script (steps, menus); compiled to dialplan by ``volna scenarios compile``.
    ivr: IvrScript | None = None
    retry: list[RetryRule] = Field(default_factory=list)
    cascade: list[CascadeRule] = Field(default_factory=list)
    #: Which outcomes count towards the caps, per channel; others release the reserved slot.
    caps_count: dict[Channel, list[Outcome]] = Field(default_factory=lambda: dict(DEFAULT_COUNTED))
    #: An inbound call from the debtor cancels the debtor's remaining robocalls today.
    inbound_cancels_calls: bool = False
    #: ``confirmed``: the IVR says nothing about the debt before ``confirm_identity``
    #: (:mod:`engine.domain.compliance`); ``public``: it may, for the reason given.
    disclosure: Literal["confirmed", "public"] = "confirmed"
    disclosure_reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _templates_ok(self) -> Scenario:
        for channel in ("sms", "viber", "sms_details"):
            text = getattr(self.messages, channel)
            if text is not None:
                try:
                    check_template(text)
                except ValueError as exc:
                    raise ValueError(f"messages.{channel}: {exc}") from None
        for ch in Channel:
            self.caps_count.setdefault(ch, DEFAULT_COUNTED[ch])
            never = NEVER_COUNTED & set(self.caps_count[ch])
            if never:
                raise ValueError(f"caps_count.{ch}: {sorted(never)} never counts (not a contact with the debtor)")
        if self.disclosure == "public" and len((self.disclosure_reason or "").strip()) < 10:
            raise ValueError("disclosure: public needs a disclosure_reason (why a third party may hear it)")
        return self

    def cap_class(self, channel: Channel) -> CapClass:
        return self.ivr_cap_class if channel is Channel.IVR else "message"

    def offers_operator(self) -> bool:
        """A call of this scenario may put the debtor through to an operator (a conversation)."""
        return self.ivr is not None and self.ivr.offers_operator()

    def counts(self, channel: Channel, outcome: Outcome) -> bool:
        return outcome not in NEVER_COUNTED and outcome in self.caps_count.get(channel, DEFAULT_COUNTED[channel])

    def text_for(self, channel: Channel, template: str | None = None) -> str | None:
        """The template for ``channel``; ``template="sms-details"`` picks the payment-details SMS."""
        if channel is Channel.SMS:
            if template == "sms-details" and self.messages.sms_details:
                return self.messages.sms_details
            return self.messages.sms
        if channel is Channel.VIBER:
            return self.messages.viber or self.messages.sms
        return None

    def retry_for(self, channel: Channel, outcome: Outcome) -> RetryRule | None:
        del channel
        for rule in self.retry:
            if outcome in rule.when:
                return rule
        return None

    def cascade_for(self, channel: Channel, outcome: Outcome) -> Channel | None:
        """``accepted`` as an attempt's outcome means "no delivery within ``after_s``"."""
        for rule in self.cascade:
            if rule.from_channel is channel and (
                outcome in rule.when or (rule.after_s is not None and outcome is Outcome.ACCEPTED)
            ):
                return rule.to
        return None

    def delivery_wait_s(self, channel: Channel) -> int | None:
        """How long an accepted message may wait for delivery before it cascades."""
        waits = [r.after_s for r in self.cascade if r.from_channel is channel and r.after_s]
        return min(waits) if waits else None
