"""IVR robocalls through Asterisk AMI (see :mod:`connectors.ami.connector`)."""

from connectors.ami.connector import AmiConnector
from connectors.ami.settings import AmiSettings, ServerSettings, TrunkSettings

__all__ = ["AmiConnector", "AmiSettings", "ServerSettings", "TrunkSettings"]
