"""Channel connectors: each implements :class:`connectors.base.Connector`."""
