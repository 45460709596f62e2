"""Volna's own exception hierarchy; library exceptions are translated at the edge."""


class VolnaError(Exception):
    """Base of every error Volna raises on purpose."""


class ConfigError(VolnaError):
    """A configuration or scenario file is invalid; the message says what and where."""


class IntakeError(VolnaError):
    """A task line cannot be accepted."""

    def __init__(self, reason: str, line_no: int | None = None) -> None:
        self.reason = reason
        self.line_no = line_no
        super().__init__(f"line {line_no}: {reason}" if line_no is not None else reason)


class StoreFull(IntakeError):
    """Redis refused a write at ``maxmemory`` (``noeviction``): the batch was not written at all."""


class WaveError(VolnaError):
    """A wave operation is not allowed in the wave's current state (or the wave is unknown)."""


class ConnectorError(VolnaError):
    """A connector failed in a way the dispatcher must handle (transport down, protocol error)."""


class ProtocolError(ConnectorError):
    """Bytes or messages from a peer that do not follow the protocol."""


class StoreUnavailable(VolnaError):
    """Redis cannot be reached (or refuses writes): the message names the server, never its password."""


class ArchiveUnavailable(VolnaError):
    """PostgreSQL cannot be reached or failed a statement: the message names the server, never its password."""
