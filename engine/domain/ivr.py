"""IVR scripts (the ``ivr:`` block of a scenario): their schema and what a call needs from them.

A script is a list of steps run in order on the answered call — ``play`` prompt files,
``say_amount`` (the debt in roubles and kopecks, Russian), ``say_digits`` (an account number),
``menu`` (keys → operator, payment details by SMS, promise to pay, repeat, opt out) — with an
optional answering-machine check first (``amd``). :mod:`connectors.ami.dialplan` compiles every
scenario's script into one context ``[volna-<name>]`` (``ops/asterisk/extensions_volna.conf``);
the AMI connector originates calls into ``<context>,s,1`` (:func:`ivr_entry`) with the channel
variables of :func:`channel_variables`.

The dialplan reports what happens with ``UserEvent`` s the connector turns into the attempt's
data (``connectors/ami/calls.py`` holds the same names):
``VolnaStep`` (``Step``), ``VolnaKey`` (``Digit``), ``VolnaAction`` (``Action``),
``VolnaAmd`` (``Status``), ``VolnaQueue`` (``Status`` = ``QUEUESTATUS`` when no operator took
the call) and ``VolnaEnd`` (``Seconds`` listened), each with ``Call: ${VOLNA_CALL}`` and
``Task: ${VOLNA_TASK}``. The operator option is offered (its prompt played, its key honoured)
only when ``${VOLNA_CONV_OK}`` is ``1`` — the core says whether the debtor's conversation cap
has room. Prompt names are sound files without extension, looked up in the channel language.

Example (``scenarios/soft_reminder.yaml``)::

    ivr:
      max_duration_s: 180
      amd: {on_machine: hangup}
      operator: {queue: debt-operators, timeout_s: 60}
      steps:
        - {id: greeting, play: [volna/greeting-soft]}
        - id: amount
          say_amount: {var: amount, before: [volna/your-debt-is]}
        - id: main
          menu:
            options:
              - {key: "1", action: operator, prompt: [volna/press-1-operator]}
              - {key: "2", action: sms_payment_details, prompt: [volna/press-2-sms], confirm: [volna/sms-sent]}
              - {key: "3", action: promise_to_pay, prompt: [volna/press-3-promise], confirm: [volna/thanks]}
              - {key: "0", action: repeat, prompt: [volna/press-0-repeat]}
              - {key: "9", action: opt_out, prompt: [volna/press-9-optout], confirm: [volna/optout-done]}
      goodbye: [volna/goodbye]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from engine.domain.amounts import parse_amount

Prompt = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-./]{1,120}$")]
StepId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$", max_length=32)]
Key = Literal["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*"]
MenuAction = Literal["operator", "sms_payment_details", "promise_to_pay", "repeat", "opt_out"]

_RESERVED_LABELS = frozenset({"start", "end", "machine"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PluralPrompts(_Model):
    """The unit word in Russian's three plural forms: 1 рубль, 2 рубля, 5 рублей."""

    one: Prompt
    few: Prompt
    many: Prompt


class AmountSpec(_Model):
    var: str = "amount"
    before: list[Prompt] = Field(default_factory=list)
    after: list[Prompt] = Field(default_factory=list)
    roubles: PluralPrompts = PluralPrompts(one="volna/rubl", few="volna/rublya", many="volna/rubley")
    kopecks: PluralPrompts = PluralPrompts(one="volna/kopeyka", few="volna/kopeyki", many="volna/kopeek")


class DigitsSpec(_Model):
    var: str = "account"
    before: list[Prompt] = Field(default_factory=list)


class MenuOption(_Model):
    key: Key
    action: MenuAction
    #: "Press 1 to …" — played in the menu only when the option is offered.
    prompt: list[Prompt] = Field(default_factory=list)
    #: Played after the choice ("the payment details are on their way").
    confirm: list[Prompt] = Field(default_factory=list)


class MenuSpec(_Model):
    intro: list[Prompt] = Field(default_factory=list)
    options: list[MenuOption] = Field(min_length=1)
    #: Seconds to wait for a key after the prompts.
    timeout_s: int = Field(default=5, ge=1, le=60)
    #: Times the menu is offered when no key or a wrong key is pressed.
    attempts: int = Field(default=2, ge=1, le=5)
    invalid: list[Prompt] = Field(default_factory=lambda: ["volna/invalid-key"])
    #: After a choice (other than operator and repeat): go on with the next step, or end the call.
    after_choice: Literal["next", "end"] = "end"

    @model_validator(mode="after")
    def _unique_keys(self) -> MenuSpec:
        keys = [o.key for o in self.options]
        if len(set(keys)) != len(keys):
            raise ValueError("menu keys must be unique")
        return self


class PlayStep(_Model):
    id: StepId
    play: list[Prompt] = Field(min_length=1)


class SayAmountStep(_Model):
    id: StepId
    say_amount: AmountSpec


class SayDigitsStep(_Model):
    id: StepId
    say_digits: DigitsSpec


class MenuStep(_Model):
    id: StepId
    menu: MenuSpec


_KINDS = ("play", "say_amount", "say_digits", "menu")


def _step_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return next((k for k in _KINDS if k in type(value).model_fields), None)
    found = [k for k in _KINDS if isinstance(value, Mapping) and k in value]
    return found[0] if len(found) == 1 else None


Step = Annotated[
    Annotated[PlayStep, Tag("play")] | Annotated[SayAmountStep, Tag("say_amount")]
    | Annotated[SayDigitsStep, Tag("say_digits")] | Annotated[MenuStep, Tag("menu")],
    Discriminator(_step_kind, custom_error_type="step_kind",
                  custom_error_message="a step has exactly one of play, say_amount, say_digits, menu"),
]


class AmdSettings(_Model):
    """``AMD()`` on answer; a machine ends the call (``answered_machine``) or hears ``message``."""

    on_machine: Literal["hangup", "message"] = "hangup"
    message: list[Prompt] = Field(default_factory=list)
    #: ``AMD(initialSilence,greeting,afterGreetingSilence,totalAnalysisTime)``; unset = amd.conf.
    initial_silence_ms: int | None = Field(default=None, ge=100, le=10000)
    greeting_ms: int | None = Field(default=None, ge=100, le=10000)
    after_greeting_silence_ms: int | None = Field(default=None, ge=100, le=10000)
    total_analysis_ms: int | None = Field(default=None, ge=500, le=20000)


class OperatorSettings(_Model):
    queue: str = Field(pattern=r"^[A-Za-z0-9_\-.]{1,64}$")
    timeout_s: int = Field(default=60, ge=5, le=600)
    #: Played when no operator took the call.
    unavailable: list[Prompt] = Field(default_factory=lambda: ["volna/operator-busy"])


class IvrScript(_Model):
    language: str = Field(default="ru", pattern=r"^[a-z]{2}(_[A-Z]{2})?$")
    #: Dialplan context; default ``volna-<scenario name>``.
    context: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{1,79}$")
    #: The call is hung up after this long in the dialplan (and by the connector, as a backstop).
    max_duration_s: int = Field(default=300, ge=10, le=3600)
    #: Ringing time before ``no_answer``; unset = the connector's ``ring_timeout_s``.
    ring_timeout_s: int | None = Field(default=None, ge=5, le=120)
    amd: AmdSettings | None = None
    operator: OperatorSettings | None = None
    steps: list[Step] = Field(min_length=1)
    goodbye: list[Prompt] = Field(default_factory=list)
    #: How many times "repeat" may restart the script.
    max_repeats: int = Field(default=2, ge=0, le=5)
    #: Task vars handed to the dialplan as ``VOLNA_<NAME>`` besides the ones the steps use.
    variables: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> IvrScript:
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError("step ids must be unique")
        if _RESERVED_LABELS & set(ids):
            raise ValueError(f"step ids {sorted(_RESERVED_LABELS)} are reserved")
        if self.offers_operator() and self.operator is None:
            raise ValueError("a menu offers the operator: set operator.queue")
        for name in [*self.variables, *(v for _, v, _ in self._var_uses())]:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,40}", name):
                raise ValueError(f"task var name {name!r} cannot be a channel variable")
        return self

    def offers_operator(self) -> bool:
        return any(isinstance(s, MenuStep) and any(o.action == "operator" for o in s.menu.options)
                   for s in self.steps)

    def _var_uses(self) -> list[tuple[str, str, str]]:
        """``(step id, task var, kind)`` of every step that reads a task var."""
        out = []
        for s in self.steps:
            if isinstance(s, SayAmountStep):
                out.append((s.id, s.say_amount.var, "amount"))
            elif isinstance(s, SayDigitsStep):
                out.append((s.id, s.say_digits.var, "digits"))
        return out


class ScenarioLike(Protocol):
    name: str
    ivr: Any


# ---- amounts, as the IVR says them ----------------------------------------------------------


def split_amount(value: Any) -> tuple[int, int]:
    """``"1 234,5"`` → ``(1234, 50)``: roubles and kopecks (half-up); ``ValueError`` if not an amount."""
    amount = parse_amount(value)
    if amount < 0 or amount >= 10**12:
        raise ValueError(f"{value!r} is not an amount")
    kopecks = int(amount * 100)
    return kopecks // 100, kopecks % 100


def plural_form(n: int) -> Literal["one", "few", "many"]:
    """Russian plural category of ``n``: 1, 21 → one; 2–4, 22 → few; 0, 5–20, 11–14 → many."""
    if n % 10 == 1 and n % 100 != 11:
        return "one"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return "few"
    return "many"
