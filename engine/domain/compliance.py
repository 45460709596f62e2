"""What the law asks of a scenario's content, checked before it can be used (``volna scenarios
check``, ``compile`` and ``volna run``).

* **No disclosure to a third party** (230-FZ art. 6): the IVR says nothing about the debt — an
  amount, an account, a due date, a creditor, a prompt marked ``discloses``, a menu offering
  payment details or a promise to pay — before a ``confirm_identity`` step, unless the scenario
  declares ``disclosure: public`` with a ``disclosure_reason``. An answering machine's message
  (``amd.message``) must not play a disclosing prompt variable either: anyone may hear it.
* **Creditor and phone in every message** (in force since 1 Sep 2025): every SMS and messenger
  template names the creditor (``{creditor}``) and gives a contact phone (``{phone_back}``, or
  a number written in the text); a WhatsApp template, whose text lives at Meta, passes both as
  body parameters.

Each problem names where it is (``ivr.steps.2 (amount)``, ``messages.sms``) and what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.domain.ivr import ConfirmIdentityStep, prompt_var
from engine.domain.scenarios import Scenario
from engine.domain.templates import check_template

#: Template variables that name the creditor, and that give a contact phone.
CREDITOR_VARS = ("creditor",)
PHONE_VARS = ("phone_back", "contact_phone", "creditor_phone")
#: A phone number written into a template: 8 800 123-45-67, +7 (495) 123-45-67, 88001234567.
_PHONE_TEXT = re.compile(r"(?<![0-9])(\+7|8)[\s\-()]*[0-9]{3}[\s\-()]*[0-9]{3}[\s\-]*[0-9]{2}[\s\-]*[0-9]{2}(?![0-9])")


@dataclass(frozen=True, slots=True)
class Problem:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def scenario_problems(scenario: Scenario) -> list[Problem]:
    """Everything in ``scenario`` the law does not allow (empty: it may be used)."""
    return [*_disclosure(scenario), *_messages(scenario)]


def _disclosure(scenario: Scenario) -> list[Problem]:
    script = scenario.ivr
    if script is None or scenario.disclosure == "public":
        return []
    out: list[Problem] = []
    for i, step in enumerate(script.steps):
        if isinstance(step, ConfirmIdentityStep):
            break
        what = script.discloses(step)
        if what is not None:
            out.append(Problem(f"ivr.steps.{i} ({step.id})", f"{what} before a confirm_identity step (a third "
                               "party may have answered; confirm identity first, or declare disclosure: public "
                               "with a disclosure_reason)"))
    if script.amd is not None:
        for p in script.amd.message:
            name = prompt_var(p)
            if name is not None and script.prompt_vars[name].discloses:
                out.append(Problem("ivr.amd.message", f"plays {p} to an answering machine, which anyone may hear"))
    return out


def _messages(scenario: Scenario) -> list[Problem]:
    out: list[Problem] = []
    m = scenario.messages
    for name in ("sms", "viber", "sms_details"):
        text = getattr(m, name)
        if text is None:
            continue
        used = set(check_template(text))
        if not used & set(CREDITOR_VARS):
            out.append(Problem(f"messages.{name}", "does not name the creditor ({creditor})"))
        if not used & set(PHONE_VARS) and not _PHONE_TEXT.search(text):
            out.append(Problem(f"messages.{name}", "gives no contact phone ({phone_back} or a number)"))
    if m.whatsapp is not None:
        params = {p.partition(":")[0] for p in m.whatsapp.body_params}
        if not params & set(CREDITOR_VARS):
            out.append(Problem("messages.whatsapp.body_params", "does not pass the creditor (creditor)"))
        if not params & set(PHONE_VARS):
            out.append(Problem("messages.whatsapp.body_params", "does not pass a contact phone (phone_back)"))
    return out
