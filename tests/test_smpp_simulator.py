"""The SMSC simulator on its own, driven by a raw client whose PDUs smpplib builds."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import aiohttp
import pytest
import smpplib.smpp

from simulators.smsc import Knobs, SmscSimulator
from simulators.smsc.cli import build_parser, knobs_from_args
from simulators.smsc.text import Reassembler, part_is_broken, split_udh


def _pdu(name: str, seq: int, **fields: Any) -> bytes:
    p = smpplib.smpp.make_pdu(name, sequence=0, **fields)
    p.sequence = seq
    data: bytes = p.generate()
    return data


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.seq = 0

    @classmethod
    async def connect(cls, sim: SmscSimulator) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", sim.port))

    async def read(self) -> tuple[int, int, int, bytes]:
        async with asyncio.timeout(5):
            header = await self.reader.readexactly(16)
            length, cmd, status, seq = struct.unpack(">IIII", header)
            return cmd, status, seq, await self.reader.readexactly(length - 16)

    async def call(self, name: str, **fields: Any) -> tuple[int, int, bytes]:
        self.seq += 1
        self.writer.write(_pdu(name, self.seq, **fields))
        while True:
            cmd, status, seq, body = await self.read()
            if seq == self.seq and cmd & 0x80000000:
                return cmd, status, body

    async def bind(self, mode: str = "transceiver", password: str = "secret", system_id: str = "volna") -> int:
        _, status, _ = await self.call(f"bind_{mode}", system_id=system_id, password=password, system_type="")
        return status

    async def submit(self, dest: str, message: bytes, **fields: Any) -> tuple[int, str]:
        _, status, body = await self.call("submit_sm", source_addr="Volna", source_addr_ton=5, destination_addr=dest,
                                          dest_addr_ton=1, dest_addr_npi=1, short_message=message,
                                          registered_delivery=fields.pop("registered_delivery", 1), **fields)
        return status, body.rstrip(b"\x00").decode()

    def close(self) -> None:
        self.writer.close()


async def test_bind_credentials() -> None:
    async with SmscSimulator(Knobs(accounts={"volna": "secret"})) as sim:
        c = await Client.connect(sim)
        assert await c.bind(password="wrong") == 0x0E  # ESME_RINVPASWD
        c.close()
        c = await Client.connect(sim)
        assert await c.bind(system_id="nobody") == 0x0F  # ESME_RINVSYSID
        c.close()
        c = await Client.connect(sim)
        status, _ = await c.submit("79161234567", b"before bind")
        assert status == 0x04  # ESME_RINVBNDSTS
        assert await c.bind() == 0
        assert await c.bind() == 0x05  # ESME_RALYBND
        cmd, status, _ = await c.call("enquire_link")
        assert (cmd, status) == (0x80000015, 0)
        c.close()
        assert sim.stats.bind_failures == {"volna": 1, "nobody": 1}


async def test_receiver_cannot_submit_and_unknown_command_is_nacked() -> None:
    async with SmscSimulator() as sim:
        c = await Client.connect(sim)
        assert await c.bind("receiver") == 0
        status, _ = await c.submit("79161234567", b"x")
        assert status == 0x04
        c.writer.write(struct.pack(">IIII", 16, 0x00000777, 0, 99))
        cmd, status, seq, _ = await c.read()
        assert (cmd, status, seq) == (0x80000000, 0x03, 99)
        c.close()


async def test_ids_hex_and_decimal_and_invalid_prefix() -> None:
    async with SmscSimulator(Knobs(id_format="hex", first_message_id=0x1A2B, invalid_prefix="7999",
                                   receipts=False)) as sim:
        c = await Client.connect(sim)
        await c.bind("transmitter")
        assert await c.submit("79161234567", b"one") == (0, "1A2B")
        assert await c.submit("79161234567", b"two") == (0, "1A2C")
        assert (await c.submit("79990001234", b"bad"))[0] == 0x0B
        c.close()
        assert sim.stats.per_text == {"one": 1, "two": 1} and sim.stats.invalid_destination == 1


async def test_window_limit_and_throttle() -> None:
    knobs = Knobs(window=1, submit_latency_min_s=0.2, submit_latency_max_s=0.2, receipts=False)
    async with SmscSimulator(knobs) as sim:
        c = await Client.connect(sim)
        await c.bind()
        c.writer.write(_pdu("submit_sm", 50, destination_addr="7916", short_message=b"a"))
        c.writer.write(_pdu("submit_sm", 51, destination_addr="7916", short_message=b"b"))
        first = await c.read()
        assert (first[1], first[2]) == (0x14, 51)  # ESME_RMSGQFUL while 50 is pending
        second = await c.read()
        assert (second[1], second[2]) == (0, 50)
        sim.knobs.window, sim.knobs.submit_latency_min_s, sim.knobs.submit_latency_max_s = 0, 0.0, 0.0
        sim.knobs.tps_limit, sim.knobs.tps_burst = 1.0, 1.0
        statuses = [(await c.submit("7916", f"t{i}".encode()))[0] for i in range(3)]
        assert statuses == [0, 0x58, 0x58]
        c.close()


async def test_data_sm_and_sar_and_udh16_reassembly() -> None:
    async with SmscSimulator(Knobs(receipts=False)) as sim:
        c = await Client.connect(sim)
        await c.bind()
        _, status, body = await c.call("data_sm", source_addr="Volna", destination_addr="79161234567",
                                       esm_class=0, data_coding=0, message_payload=b"via data sm")
        assert status == 0 and body.rstrip(b"\x00")
        for seq, chunk in ((2, "Ж" * 3), (1, "Ф" * 3)):  # 16-bit reference, out of order
            udh = bytes((0x06, 0x08, 0x04, 0x12, 0x34, 2, seq))
            status, _ = await c.submit("79161234567", udh + chunk.encode("utf-16-be"), esm_class=0x40,
                                       data_coding=8)
            assert status == 0
        for seq, chunk in ((1, b"sar-"), (2, b"joined")):
            status, _ = await c.submit("79161234567", chunk, sar_msg_ref_num=7, sar_total_segments=2,
                                       sar_segment_seqnum=seq)
            assert status == 0
        c.close()
        assert sim.stats.per_text == {"via data sm": 1, "ФФФЖЖЖ": 1, "sar-joined": 1}
        assert sim.stats.udh_ref_bits == {16: 2} and sim.stats.sar_parts == 2


async def test_receipts_wait_for_a_receiver_then_round_robin() -> None:
    async with SmscSimulator(Knobs(receipt_tlvs=True)) as sim:
        tx = await Client.connect(sim)
        await tx.bind("transmitter")
        status, message_id = await tx.submit("79161234567", b"hello")
        assert status == 0
        await asyncio.sleep(0.05)
        assert sim.stats.receipts_waiting == 1
        rx1, rx2 = await Client.connect(sim), await Client.connect(sim)
        await rx1.bind("receiver")
        cmd, _, seq, body = await rx1.read()
        assert cmd == 0x00000005
        receipt = smpplib.smpp.parse_pdu(struct.pack(">IIII", 16 + len(body), cmd, 0, seq) + body, sequence=0)
        assert receipt.esm_class == 4 and receipt.receipted_message_id == message_id.encode()
        assert receipt.message_state == 2 and b"stat:DELIVRD" in receipt.short_message
        assert receipt.short_message.startswith(f"id:{message_id} ".encode())
        rx1.writer.write(struct.pack(">IIII", 17, 0x80000005, 0, seq) + b"\x00")
        await rx2.bind("receiver")
        for i in range(4):
            assert (await tx.submit("79161234567", f"m{i}".encode()))[0] == 0
        got = {"rx1": 0, "rx2": 0}

        async def drain(name: str, client: Client) -> None:
            while got[name] < 2:
                cmd, _, seq, _ = await client.read()
                client.writer.write(struct.pack(">IIII", 17, cmd | 0x80000000, 0, seq) + b"\x00")
                got[name] += 1

        await asyncio.gather(drain("rx1", rx1), drain("rx2", rx2))
        assert got == {"rx1": 2, "rx2": 2}
        for client in (tx, rx1, rx2):
            client.close()


async def test_http_stats() -> None:
    async with SmscSimulator(Knobs(receipts=False), http_port=0) as sim:
        c = await Client.connect(sim)
        await c.bind()
        await c.submit("79161234567", b"counted")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{sim.http_url}/stats") as resp:
                data = await resp.json()
            async with session.get(f"{sim.http_url}/knobs") as resp:
                knobs = await resp.json()
        c.close()
        assert data["messages"] == 1 and data["per_text"] == {"counted": 1}
        assert data["per_destination"] == {"79161234567": 1} and data["binds"] == {"transceiver": 1}
        assert knobs["accounts"] == {"volna": "***"}


def test_cli_knobs() -> None:
    args = build_parser().parse_args(["--port", "2776", "--tps-limit", "100", "--id-format", "hex",
                                      "--account", "a:pw1", "--account", "b:pw2", "--receipt-tlvs", "false",
                                      "--http-port", "0"])
    knobs = knobs_from_args(args)
    assert args.port == 2776 and args.http_port == 0
    assert knobs.tps_limit == 100.0 and knobs.id_format == "hex" and knobs.receipt_tlvs is False
    assert knobs.accounts == {"a": "pw1", "b": "pw2"}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--account", "nocolon"])


def test_text_helpers() -> None:
    assert part_is_broken(0, b"ab\x1b") and not part_is_broken(0, b"a\x1b\x65")
    assert part_is_broken(8, "😀".encode("utf-16-be")[:2]) and part_is_broken(8, b"\x00")
    assert not part_is_broken(8, "😀".encode("utf-16-be"))
    concat, rest = split_udh(bytes.fromhex("050003AB0201") + b"xy")
    assert concat is not None and (concat.ref, concat.total, concat.seq, concat.ref_bits) == (0xAB, 2, 1, 8)
    assert rest == b"xy"
    with pytest.raises(ValueError):
        split_udh(b"\x09\x00")
    r = Reassembler()
    assert r.add(("s", "a", "b"), concat, 0, b"x") is None and r.incomplete == 1
