"""The demo's debtors answering back, through the simulators' control endpoints, as real ones do:
some call back (the AMI simulator rings the inbound context from their number), a few write
"Стоп." by SMS (an MO in two concatenated parts, on the SMSC's binds in turn) or "STOP" on
WhatsApp (the gateway simulator posts the signed webhook), and a stranger calls. The report then
shows the callbacks and the opt-outs (docs/inbound.md)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter

import aiohttp

log = logging.getLogger("engine.demo")

#: Shares of the demo's debtors that call back, and that write stop by SMS and by WhatsApp.
CALL_BACK, STOP_SMS, STOP_WHATSAPP = 0.04, 0.01, 0.005


async def debtors_reply(ports: dict[str, int], phones: list[str], *, spread_s: float, start_after_s: float = 5.0,
                        seed: int = 7) -> Counter[str]:
    """Posts the replies over ``spread_s`` seconds, from ``start_after_s`` on (the dispatchers'
    AMI sessions are up by then: a call nobody watches is nobody's); returns what was asked."""
    rnd = random.Random(seed)
    plan: list[tuple[str, str]] = []
    for phone in phones:
        x = rnd.random()
        if x < CALL_BACK:
            plan.append(("call", phone))
        elif x < CALL_BACK + STOP_SMS:
            plan.append(("sms_stop", phone))
        elif x < CALL_BACK + STOP_SMS + STOP_WHATSAPP:
            plan.append(("whatsapp_stop", phone))
    plan.append(("call", "+79990000001"))  # a number nobody in the portfolio has
    rnd.shuffle(plan)
    done: Counter[str] = Counter()
    pause_s = spread_s / max(len(plan), 1)
    timeout = aiohttp.ClientTimeout(total=5)
    await asyncio.sleep(start_after_s)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for kind, phone in plan:
            digits = phone.lstrip("+")
            if kind == "call":
                url, body = f"http://127.0.0.1:{ports['ami_http']}/inbound", {"number": "8" + digits[1:],
                                                                               "talk_s": rnd.uniform(1, 5)}
            elif kind == "sms_stop":
                url, body = f"http://127.0.0.1:{ports['smsc_http']}/mo", {
                    "source": digits, "destination": "4242", "text": "Стоп.", "parts": 2}
            else:
                url, body = f"http://127.0.0.1:{ports['gateway']}/inbound/whatsapp", {"from": digits, "text": "STOP"}
            try:
                async with http.post(url, json=body) as resp:
                    if resp.status < 300:
                        done[kind] += 1
                    else:
                        log.warning("demo reply %s refused by the simulator: %s", kind, resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("demo reply %s not posted: %s", kind, type(exc).__name__)
            await asyncio.sleep(pause_s)
    return done
