"""Channel connectors: each implements :class:`engine.port.Connector`."""
