"""IVR scripts (the ``ivr:`` block of a scenario): their schema, and what a call needs from a task.

A script is a list of steps run in order on the answered call:

* ``play`` — prompt files; ``discloses: true`` when what they say reveals the debt or the creditor;
* ``confirm_identity`` — "if you are the account holder, press 1": any other key, or none, ends
  the call with ``wrong_party`` (a third party heard nothing about the debt; it never counts
  towards the debtor's caps);
* ``say_amount`` (roubles and kopecks), ``say_digits`` (an account), ``say_date`` (a due date,
  «двадцать пятого декабря») — from the task's vars, as files composed by
  :mod:`engine.domain.speech`;
* ``menu`` — keys → operator, payment details by SMS, a promise to pay (optionally captured as
  DTMF: a date DDMM, then an amount), repeat, opt out, or a nested ``menu``.

Prompt lists hold sound file names (no extension, looked up in the channel's language) or
``{name}``: the task var ``name``, which must be one of the files ``prompt_vars.name.allowed``
lists (a creditor's name, say) — the intake refuses a task whose value is not. ``texts`` says
what each prompt says: ``volna scenarios prompts --synth`` speaks them into placeholder files,
and they are the script for whoever records the real ones.

``record`` (``all``, ``operator``, ``none``): ``MixMonitor`` from the answer, only once put
through to an operator, or never. ``amd``: ``AMD()`` on answer with its arguments; a silent
person (``INITIALSILENCE``) and an unsure verdict (``NOTSURE``) are treated as a person unless
the script says ``machine``. ``operator``: the queue, and the free agents to keep in reserve.

Which steps say something a third party must not hear is :func:`discloses`; the rule that none
comes before ``confirm_identity`` (unless the scenario's ``disclosure: public``) is checked by
:mod:`engine.domain.compliance`. :mod:`connectors.ami.dialplan` compiles a script into the
context ``[volna-<name>]``; the calls are originated into ``<context>,s,1`` with the channel
variables :func:`spoken` computes from the task (``connectors.ami.variables``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from engine.domain import speech
from engine.domain.amounts import parse_amount
from engine.domain.speech import plural_form

__all__ = ["plural_form"]

File = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-./]{1,120}$")]
#: A sound file, or ``{var}``: the file named by a task var (declared in ``prompt_vars``).
Prompt = Annotated[str, Field(pattern=r"^([A-Za-z0-9_\-./]{1,120}|\{[a-z][a-z0-9_]{0,40}\})$")]
StepId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$", max_length=32)]
Key = Literal["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*"]
MenuAction = Literal["operator", "sms_payment_details", "promise_to_pay", "repeat", "opt_out", "menu"]

_RESERVED_LABELS = frozenset({"start", "end", "machine", "replay", "wrong"})
_VAR = re.compile(r"^\{([a-z][a-z0-9_]{0,40})\}$")
#: Menu actions that presuppose a debt: offering them to a third party discloses it.
DISCLOSING_ACTIONS = frozenset({"sms_payment_details", "promise_to_pay"})
MAX_MENU_DEPTH = 3


def prompt_var(prompt: str) -> str | None:
    """``"{creditor_prompt}"`` → ``"creditor_prompt"``; a plain file → None."""
    m = _VAR.match(prompt)
    return m.group(1) if m else None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PluralPrompts(_Model):
    """The unit word in Russian's three plural forms: 1 рубль, 2 рубля, 5 рублей."""

    one: File
    few: File
    many: File

    def forms(self) -> tuple[str, str, str]:
        return self.one, self.few, self.many


class PromptVar(_Model):
    """A prompt chosen per task (``{name}`` in a prompt list): the task's value must be one of ``allowed``."""

    allowed: list[File] = Field(min_length=1)
    #: Played when the task has no value; unset: the intake refuses such a task.
    default: File | None = None
    #: What it says reveals the debt or the creditor (a creditor's name does; a debtor's name does not).
    discloses: bool = True

    @model_validator(mode="after")
    def _default_allowed(self) -> PromptVar:
        if self.default is not None and self.default not in self.allowed:
            raise ValueError(f"default {self.default} is not in its whitelist (allowed)")
        return self


class AmountSpec(_Model):
    var: str = "amount"
    before: list[Prompt] = Field(default_factory=list)
    after: list[Prompt] = Field(default_factory=list)
    roubles: PluralPrompts = PluralPrompts(one="volna/rubl", few="volna/rublya", many="volna/rubley")
    kopecks: PluralPrompts = PluralPrompts(one="volna/kopeyka", few="volna/kopeyki", many="volna/kopeek")


class DigitsSpec(_Model):
    var: str = "account"
    before: list[Prompt] = Field(default_factory=list)
    after: list[Prompt] = Field(default_factory=list)


class DateSpec(_Model):
    var: str = "due_date"
    before: list[Prompt] = Field(default_factory=list)
    after: list[Prompt] = Field(default_factory=list)


class IdentitySpec(_Model):
    """"If you are <the debtor's name, or the account holder>, press 1"."""

    prompt: list[Prompt] = Field(default_factory=lambda: ["volna/identity-holder-press-1"], min_length=1)
    key: Key = "1"
    timeout_s: int = Field(default=6, ge=1, le=60)
    attempts: int = Field(default=2, ge=1, le=5)
    #: Played to whoever did not confirm, before the call ends ``wrong_party``.
    wrong: list[Prompt] = Field(default_factory=lambda: ["volna/identity-sorry"])


class PromiseCapture(_Model):
    """A promise to pay keyed in: the date as DDMM, then (with ``amount``) the roubles and ``#``."""

    date: list[Prompt] = Field(default_factory=lambda: ["volna/promise-enter-date"], min_length=1)
    amount: list[Prompt] = Field(default_factory=list)
    invalid: list[Prompt] = Field(default_factory=lambda: ["volna/promise-invalid-date"])
    timeout_s: int = Field(default=8, ge=2, le=60)
    attempts: int = Field(default=2, ge=1, le=5)
    #: A date further ahead than this is reported invalid.
    max_days: int = Field(default=30, ge=1, le=366)


class MenuOption(_Model):
    key: Key
    action: MenuAction
    #: "Press 1 to …" — played in the menu only when the option is offered.
    prompt: list[Prompt] = Field(default_factory=list)
    #: Played after the choice ("the payment details are on their way").
    confirm: list[Prompt] = Field(default_factory=list)
    #: ``promise_to_pay`` only: key in the date (and amount) of the promise.
    capture: PromiseCapture | None = None
    #: ``menu`` only: the nested menu this key opens.
    menu: MenuSpec | None = None

    @model_validator(mode="after")
    def _fits_action(self) -> MenuOption:
        if self.capture is not None and self.action != "promise_to_pay":
            raise ValueError(f"key {self.key}: capture belongs to action promise_to_pay")
        if (self.menu is not None) != (self.action == "menu"):
            raise ValueError(f"key {self.key}: action menu and a nested menu go together")
        return self


class MenuSpec(_Model):
    intro: list[Prompt] = Field(default_factory=list)
    options: list[MenuOption] = Field(min_length=1)
    #: Seconds to wait for a key after the prompts.
    timeout_s: int = Field(default=5, ge=1, le=60)
    #: Times the menu is offered when no key or a wrong key is pressed.
    attempts: int = Field(default=2, ge=1, le=5)
    invalid: list[Prompt] = Field(default_factory=lambda: ["volna/invalid-key"])
    #: After a choice (other than operator, repeat and a nested menu): go on with the next step, or end.
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
    #: What these prompts say reveals the debt or the creditor.
    discloses: bool = False


class ConfirmIdentityStep(_Model):
    id: StepId
    confirm_identity: IdentitySpec = IdentitySpec()


class SayAmountStep(_Model):
    id: StepId
    say_amount: AmountSpec


class SayDigitsStep(_Model):
    id: StepId
    say_digits: DigitsSpec


class SayDateStep(_Model):
    id: StepId
    say_date: DateSpec


class MenuStep(_Model):
    id: StepId
    menu: MenuSpec


_KINDS = ("play", "confirm_identity", "say_amount", "say_digits", "say_date", "menu")


def _step_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return next((k for k in _KINDS if k in type(value).model_fields), None)
    found = [k for k in _KINDS if isinstance(value, Mapping) and k in value]
    return found[0] if len(found) == 1 else None


Step = Annotated[
    Annotated[PlayStep, Tag("play")] | Annotated[ConfirmIdentityStep, Tag("confirm_identity")]
    | Annotated[SayAmountStep, Tag("say_amount")] | Annotated[SayDigitsStep, Tag("say_digits")]
    | Annotated[SayDateStep, Tag("say_date")] | Annotated[MenuStep, Tag("menu")],
    Discriminator(_step_kind, custom_error_type="step_kind",
                  custom_error_message="a step has exactly one of " + ", ".join(_KINDS)),
]


class AmdSettings(_Model):
    """``AMD()`` on answer; a machine ends the call (``answered_machine``) or hears ``message``.

    Unset arguments come from ``amd.conf`` (``ops/asterisk/amd.conf`` is tuned for Russian
    greetings). A person who answers and says nothing is ``MACHINE``/``INITIALSILENCE`` to
    ``AMD()``: treated as a person unless ``initial_silence: machine``; ``NOTSURE`` likewise.
    """

    on_machine: Literal["hangup", "message"] = "hangup"
    message: list[Prompt] = Field(default_factory=list)
    initial_silence: Literal["human", "machine"] = "human"
    notsure: Literal["human", "machine"] = "human"
    #: ``AMD(initialSilence,greeting,afterGreetingSilence,totalAnalysisTime,minimumWordLength,
    #: betweenWordsSilence,maximumNumberOfWords,silenceThreshold,maximumWordLength)``.
    initial_silence_ms: int | None = Field(default=None, ge=100, le=10000)
    greeting_ms: int | None = Field(default=None, ge=100, le=10000)
    after_greeting_silence_ms: int | None = Field(default=None, ge=100, le=10000)
    total_analysis_ms: int | None = Field(default=None, ge=500, le=20000)
    min_word_length_ms: int | None = Field(default=None, ge=10, le=2000)
    between_words_silence_ms: int | None = Field(default=None, ge=10, le=2000)
    maximum_number_of_words: int | None = Field(default=None, ge=1, le=20)
    silence_threshold: int | None = Field(default=None, ge=1, le=32767)
    maximum_word_length_ms: int | None = Field(default=None, ge=100, le=20000)

    def arguments(self) -> list[int | None]:
        """``AMD()``'s positional arguments, trailing unset ones dropped."""
        args = [self.initial_silence_ms, self.greeting_ms, self.after_greeting_silence_ms, self.total_analysis_ms,
                self.min_word_length_ms, self.between_words_silence_ms, self.maximum_number_of_words,
                self.silence_threshold, self.maximum_word_length_ms]
        while args and args[-1] is None:
            args.pop()
        return args


class OperatorSettings(_Model):
    queue: str = Field(pattern=r"^[A-Za-z0-9_\-.]{1,64}$")
    timeout_s: int = Field(default=60, ge=5, le=600)
    #: Played when no operator took the call.
    unavailable: list[Prompt] = Field(default_factory=lambda: ["volna/operator-busy"])
    #: "Press 1 for an operator" is offered only while more than this many agents are free.
    reserve: int = Field(default=1, ge=0, le=1000)
    #: Calls in progress that may have the offer, per free agent beyond the reserve (most people
    #: do not press 1); a call over this bound is not offered the operator.
    offers_per_free_agent: float = Field(default=2.0, gt=0, le=100)
    #: Pace the scenario's calls by the free agents: at most this many calls in progress per free
    #: agent (beyond the reserve); unset: not paced by agents.
    calls_per_free_agent: float | None = Field(default=None, gt=0, le=1000)


Record = Literal["all", "operator", "none"]


class IvrScript(_Model):
    language: str = Field(default="ru", pattern=r"^[a-z]{2}(_[A-Z]{2})?$")
    #: Dialplan context; default ``volna-<scenario name>``.
    context: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{1,79}$")
    #: The call is hung up after this long in the dialplan (and by the connector, as a backstop).
    max_duration_s: int = Field(default=300, ge=10, le=3600)
    #: Ringing time before ``no_answer``; unset = the connector's ``ring_timeout_s``.
    ring_timeout_s: int | None = Field(default=None, ge=5, le=120)
    #: Calls are recorded (Minjust order No. 134): from the answer, only with an operator, or never.
    record: Record = "all"
    amd: AmdSettings | None = None
    operator: OperatorSettings | None = None
    prompt_vars: dict[str, PromptVar] = Field(default_factory=dict)
    #: What each prompt says (placeholder synthesis, and the script for the recordings).
    texts: dict[File, str] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)
    goodbye: list[Prompt] = Field(default_factory=list)
    #: How many times "repeat" may replay the script (from the step after the identity check).
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
        for name in [*self.variables, *self.prompt_vars, *(v for _, v, _ in self.var_uses())]:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,40}", name):
                raise ValueError(f"task var name {name!r} cannot be a channel variable")
        for where, prompts in self.prompt_lists():
            for p in prompts:
                ref = prompt_var(p)
                if ref is not None and ref not in self.prompt_vars:
                    raise ValueError(f"{where}: prompt variable {p} has no whitelist (declare it in "
                                     f"ivr.prompt_vars.{ref}.allowed)")
        for path, _ in self.menus():
            if path.count(".") >= MAX_MENU_DEPTH:
                raise ValueError(f"step {path.partition('.')[0]}: menus nest at most {MAX_MENU_DEPTH} deep")
        return self

    # ---- walking the script ---------------------------------------------------------------------

    def offers_operator(self) -> bool:
        return any(o.action == "operator" for _, menu in self.menus() for o in menu.options)

    def menus(self) -> Iterator[tuple[str, MenuSpec]]:
        """Every menu with its path: ``main`` for a menu step, ``main.4`` for the one key 4 opens."""
        def walk(path: str, menu: MenuSpec) -> Iterator[tuple[str, MenuSpec]]:
            yield path, menu
            for o in menu.options:
                if o.menu is not None:
                    yield from walk(f"{path}.{o.key}", o.menu)

        for step in self.steps:
            if isinstance(step, MenuStep):
                yield from walk(step.id, step.menu)

    def var_uses(self) -> list[tuple[str, str, str]]:
        """``(step id, task var, kind)`` of every step that says a task var (amount, digits, date)."""
        out = []
        for s in self.steps:
            if isinstance(s, SayAmountStep):
                out.append((s.id, s.say_amount.var, "amount"))
            elif isinstance(s, SayDigitsStep):
                out.append((s.id, s.say_digits.var, "digits"))
            elif isinstance(s, SayDateStep):
                out.append((s.id, s.say_date.var, "date"))
        return out

    def step_prompt_lists(self, step: Any) -> list[list[str]]:
        """The prompt lists one step plays (menus with their nested menus)."""
        if isinstance(step, PlayStep):
            return [step.play]
        if isinstance(step, ConfirmIdentityStep):
            return [step.confirm_identity.prompt, step.confirm_identity.wrong]
        if isinstance(step, SayAmountStep | SayDigitsStep | SayDateStep):
            spec = step.say_amount if isinstance(step, SayAmountStep) else \
                step.say_digits if isinstance(step, SayDigitsStep) else step.say_date
            return [spec.before, spec.after]
        out: list[list[str]] = []
        for path, menu in self.menus():
            if path.partition(".")[0] != step.id:
                continue
            out += [menu.intro, menu.invalid]
            for o in menu.options:
                out += [o.prompt, o.confirm]
                if o.capture is not None:
                    out += [o.capture.date, o.capture.amount, o.capture.invalid]
        return out

    def prompt_lists(self) -> Iterator[tuple[str, list[str]]]:
        """``(where, prompts)`` for every prompt list of the script."""
        for step in self.steps:
            for prompts in self.step_prompt_lists(step):
                yield f"step {step.id}", prompts
        if self.amd is not None:
            yield "amd.message", self.amd.message
        if self.operator is not None:
            yield "operator.unavailable", self.operator.unavailable
        yield "goodbye", self.goodbye

    def first_step_after_identity(self) -> str | None:
        """Where "repeat" replays from: the step after the last identity check (None: the start)."""
        last = max((i for i, s in enumerate(self.steps) if isinstance(s, ConfirmIdentityStep)), default=None)
        if last is None or last + 1 >= len(self.steps):
            return None
        return self.steps[last + 1].id

    # ---- what a step discloses ------------------------------------------------------------------

    def discloses(self, step: Any) -> str | None:
        """What ``step`` says that a third party must not hear (None: nothing)."""
        if isinstance(step, SayAmountStep):
            return "says the amount"
        if isinstance(step, SayDigitsStep):
            return "says the account"
        if isinstance(step, SayDateStep):
            return "says the due date"
        if isinstance(step, PlayStep) and step.discloses:
            return "plays a prompt marked discloses"
        for prompts in self.step_prompt_lists(step):
            for p in prompts:
                name = prompt_var(p)
                if name is not None and self.prompt_vars[name].discloses:
                    return f"plays {p} (the creditor)" if "creditor" in name else f"plays {p}"
        if isinstance(step, MenuStep):
            for path, menu in self.menus():
                for o in menu.options:
                    if path.partition(".")[0] == step.id and o.action in DISCLOSING_ACTIONS:
                        return f"offers {o.action}"
        return None


class ScenarioLike(Protocol):
    name: str
    ivr: Any


# ---- a task's values, as the IVR says them ------------------------------------------------------


def split_amount(value: Any) -> tuple[int, int]:
    """``"1 234,5"`` → ``(1234, 50)``: roubles and kopecks (half-up); ``ValueError`` if not an amount
    the IVR can say (0 ≤ amount < 10¹²)."""
    amount = parse_amount(value)
    if amount < 0 or amount >= speech.MAX_SAYABLE:
        raise ValueError(f"{value!r} is not an amount")
    kopecks = int(amount * 100)
    return kopecks // 100, kopecks % 100


def spoken(script: IvrScript, task_vars: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """What the script says for one task, by task var: the files of each amount, account and
    date (lists), and the file each prompt variable names. ``ValueError`` naming the step and the
    var when a value is missing or cannot be said — nothing should be dialled then (and the intake
    refuses such a task)."""
    out: dict[str, str | list[str]] = {}
    for step_id, name, kind in script.var_uses():
        value = task_vars.get(name)
        if value is None or str(value).strip() == "":
            raise ValueError(f"step {step_id}: task var {name!r} is missing")
        try:
            if kind == "amount":
                amount = next(s.say_amount for s in script.steps if isinstance(s, SayAmountStep) and s.id == step_id)
                rub, kop = split_amount(value)
                out[name] = speech.amount_prompts(rub, kop, amount.roubles.forms(), amount.kopecks.forms())
            elif kind == "digits":
                out[name] = speech.digit_prompts(str(value))
            else:
                out[name] = speech.date_prompts(speech.parse_date(value))
        except ValueError as exc:
            raise ValueError(f"step {step_id}: task var {name!r}: {exc}") from None
    for name, pv in script.prompt_vars.items():
        value = task_vars.get(name)
        if value is None or str(value).strip() == "":
            if pv.default is None:
                raise ValueError(f"prompt variable {name!r} is missing and has no default")
            out[name] = pv.default
        elif str(value) not in pv.allowed:
            raise ValueError(f"prompt variable {name!r}: {value!r} is not in its whitelist")
        else:
            out[name] = str(value)
    return out


def required_prompts(script: IvrScript) -> dict[str, str]:
    """Every sound file a script can play, with what it says (``""`` when ``texts`` does not
    say): its prompt lists, every file a prompt variable allows, and the digit, unit and date
    files its ``say_*`` steps compose."""
    said = speech.speech_prompts()
    out: dict[str, str] = {}

    def add(name: str) -> None:
        out.setdefault(name, script.texts.get(name) or said.get(name, ""))

    for _, prompts in script.prompt_lists():
        for p in prompts:
            if prompt_var(p) is None:
                add(p)
    for spec in script.prompt_vars.values():
        for p in spec.allowed:
            add(p)
    for step in script.steps:
        if isinstance(step, SayAmountStep):
            for name in said:
                if name.startswith("digits/") or name in speech.BILLIONS:
                    add(name)
            for forms in (step.say_amount.roubles, step.say_amount.kopecks):
                for p in forms.forms():
                    add(p)
        elif isinstance(step, SayDigitsStep):
            for d in range(10):
                add(f"digits/{d}")
        elif isinstance(step, SayDateStep):
            for name in said:
                if name.startswith("volna/date/"):
                    add(name)
    return dict(sorted(out.items()))


# ---- a promise to pay, as keyed in -----------------------------------------------------------------


def promise(ddmm: str, amount: str, today: date, max_days: int) -> dict[str, Any]:
    """The promise a debtor keyed in: ``{"date": "2026-12-25", "amount": 1500}`` (no amount when
    none was keyed), or ``{"invalid": "3213", "reason": …}``. The date is the next DD.MM on or
    after ``today`` (yesterday's is taken as a slip, not next year's), within ``max_days``."""
    if not re.fullmatch(r"[0-9]{4}", ddmm or ""):
        return {"invalid": ddmm or "", "reason": "not four digits"}
    day, month = int(ddmm[:2]), int(ddmm[2:])
    when = None
    for year in (today.year, today.year + 1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            return {"invalid": ddmm, "reason": "no such date"}
        if candidate >= today - timedelta(days=1):
            when = candidate
            break
    if when is None or when > today + timedelta(days=max_days):
        return {"invalid": ddmm, "reason": f"more than {max_days} days ahead"}
    out: dict[str, Any] = {"date": when.isoformat()}
    digits = (amount or "").strip()
    if digits:
        if not re.fullmatch(r"[0-9]{1,9}", digits):
            return {"invalid": ddmm, "reason": "amount is not digits", "date": when.isoformat()}
        out["amount"] = int(digits)
    return out
