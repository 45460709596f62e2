"""Shared by the messenger benchmarks: a simulator or server in its own process, and a raw
HTTP/1.1 blaster of signed WhatsApp status webhooks (it costs little of the shared CPU)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any


def status_request(secret: str, message_id: str, status: str, recipient: str) -> bytes:
    """One HTTP/1.1 request of a WhatsApp status webhook, signed with ``secret`` as Meta signs it."""
    from connectors.messengers.webhooks import sign_sha256

    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "2"},
            "statuses": [{"id": message_id, "status": status, "timestamp": "1750000000", "recipient_id": recipient,
                          "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility"}}]}}]}]},
        separators=(",", ":")).encode()
    head = (f"POST /webhooks/whatsapp HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"X-Hub-Signature-256: {sign_sha256(secret, body)}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def blast(port: int, requests: list[bytes], total: int, connections: int) -> dict[str, Any]:
    statuses: dict[int, int] = {}
    counter = iter(range(total))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in counter:
                writer.write(requests[i % len(requests)])
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    # One deadline for the whole blast (a timer per request would cost the shared CPU more).
    async with asyncio.timeout(60 + total / 100):
        await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    return {"webhooks": total, "webhooks_per_s": total / elapsed, "statuses": statuses}
