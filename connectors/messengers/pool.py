"""What the messenger connectors share: one :class:`GatewayClient` per account, one target each."""

from __future__ import annotations

import zlib
from contextlib import AsyncExitStack
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from connectors.messengers.http import GatewayClient
from engine.domain.models import Task
from engine.errors import ConfigError
from engine.port import Connector, Target

M = TypeVar("M", bound=BaseModel)


def validate_settings(model: type[M], raw: dict[str, Any], where: str) -> M:
    """``raw`` (a TOML section) as ``model``, or a :class:`ConfigError` listing every problem."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"{where}:\n  " + "\n  ".join(lines)) from None


class AccountsConnector(Connector):
    """Targets are the accounts (their ``rate_per_s``/``max_concurrent`` go to the core's pacing)."""

    def __init__(self) -> None:
        super().__init__()
        self.clients: dict[str, GatewayClient] = {}
        self._targets: list[Target] = []
        self._stack: AsyncExitStack | None = None

    def add_account(self, client: GatewayClient, rate_per_s: float, max_concurrent: int) -> None:
        self.clients[client.name] = client
        self._targets.append(Target(client.name, rate_per_s, max_concurrent))

    def targets(self) -> list[Target]:
        return list(self._targets)

    def route(self, task: Task) -> str:
        """A debtor keeps hearing from the same account while it is healthy."""
        names = [t.name for t in self._targets if self.clients[t.name].healthy] or [t.name for t in self._targets]
        if len(names) == 1:
            return names[0]
        return names[zlib.crc32(task.debtor_id.encode()) % len(names)]

    def healthy(self, target: str) -> bool:
        client = self.clients.get(target)
        return client is not None and client.healthy

    async def open(self) -> None:
        if self._stack is not None:
            return
        stack = AsyncExitStack()
        try:
            for client in self.clients.values():
                client.metrics = self.metrics
                await stack.enter_async_context(client)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()
