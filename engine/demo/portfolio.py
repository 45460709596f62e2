"""A realistic portfolio of utility debtors for the demo and load runs (never real people).

Debtors spread over the Russian regions weighted roughly by population, each with a debt
(log-normal, most of it a few thousand roubles, a tail of large ones), a personal account,
an address and a creditor of one utility (electricity, water, heating, waste); a share of
the phone numbers are wrong (the simulators answer them as invalid numbers).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.domain.regions import all_regions

#: Regions with many debtors (code → weight); the rest share a small weight each.
_HEAVY = {"77": 12, "50": 8, "78": 6, "23": 4, "66": 3, "16": 3, "02": 3, "54": 2.5, "24": 2.5, "74": 2.5,
          "61": 3, "63": 2.2, "52": 2.2, "59": 1.8, "25": 1.4, "38": 1.6, "14": 0.8, "41": 0.4, "39": 0.7,
          "49": 0.2, "87": 0.1, "27": 1.0, "42": 1.8, "55": 1.4, "72": 1.1}
_CREDITORS = {
    "electricity": ["Мосэнергосбыт", "Петроэлектросбыт", "ТНС энерго", "Энергосбыт Плюс"],
    "water": ["Мосводоканал", "Водоканал Санкт-Петербурга", "Росводоканал"],
    "heating": ["МОЭК", "ТГК-1", "Т Плюс"],
    "waste": ["Экотехпром", "Региональный оператор ТКО"],
}
_STREETS = ["ул. Ленина", "ул. Мира", "пр. Победы", "ул. Советская", "ул. Гагарина", "ул. Садовая"]
#: The simulators answer numbers with this prefix as non-existent (SMSC 0x0B, AMI cause 1).
INVALID_PREFIX = "+7999"


@dataclass(frozen=True, slots=True)
class Debtor:
    debtor_id: str
    phone: str
    region: str
    amount: float
    account: str
    address: str
    utility: str
    creditor: str


def debtors(n: int, seed: int = 1, wrong_share: float = 0.05) -> Iterator[Debtor]:
    rnd = random.Random(seed)
    regions = [r.code for r in all_regions()]
    weights = [_HEAVY.get(code, 0.3) for code in regions]
    for i in range(n):
        region = rnd.choices(regions, weights)[0]
        utility = rnd.choice(list(_CREDITORS))
        wrong = rnd.random() < wrong_share
        phone = f"{INVALID_PREFIX}{i:07d}" if wrong else f"+79{rnd.randrange(10, 99)}{i:07d}"
        yield Debtor(
            debtor_id=f"D{region}-{i:07d}", phone=phone, region=region,
            amount=round(min(rnd.lognormvariate(8.3, 0.9), 400_000.0), 2),
            account=f"{region}{rnd.randrange(10**6, 10**7)}",
            address=f"{rnd.choice(_STREETS)}, д. {rnd.randrange(1, 120)}, кв. {rnd.randrange(1, 300)}",
            utility=utility, creditor=rnd.choice(_CREDITORS[utility]),
        )


def task_line(debtor: Debtor, *, task_id: str, channel: str, scenario: str, cascade: list[str] | None = None
              ) -> str:
    obj: dict[str, Any] = {
        "task_id": task_id, "debtor_id": debtor.debtor_id, "channel": channel, "phone": debtor.phone,
        "region": debtor.region, "scenario": scenario,
        "vars": {"creditor": debtor.creditor, "account": debtor.account, "amount": debtor.amount,
                 "address": debtor.address, "due_date": "15.12.2026", "pay_url": f"https://pay.example/{debtor.account}",
                 "phone_back": "88001234567"},
    }
    if cascade:
        obj["cascade"] = cascade
    return json.dumps(obj, ensure_ascii=False)


def portfolio_line(debtor: Debtor, rnd: random.Random) -> dict[str, Any]:
    """The debtor as a planner's portfolio line: one to three phones (the first as in
    :func:`debtors`, a second one for a third of them), days overdue weighted to the first months."""
    phones = [debtor.phone]
    if rnd.random() < 0.33:
        phones.append(f"+79{rnd.randrange(10, 99)}{rnd.randrange(10**7):07d}")
    days = int(min(rnd.expovariate(1 / 75) + 30, 400))
    return {"debtor_id": debtor.debtor_id, "phones": phones, "region": debtor.region, "creditor": debtor.creditor,
            "account": debtor.account, "amount": debtor.amount, "days_overdue": days, "address": debtor.address,
            "vars": {"pay_url": f"https://pay.example/{debtor.account}"}}


def portfolio(n: int, seed: int = 1, wrong_share: float = 0.05) -> Iterator[dict[str, Any]]:
    """A portfolio of ``n`` debtors (:func:`debtors`), as JSON-ready lines."""
    rnd = random.Random(seed * 7919 + 1)
    for debtor in debtors(n, seed, wrong_share):
        yield portfolio_line(debtor, rnd)
