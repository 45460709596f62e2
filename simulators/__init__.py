"""Peers that speak the real wire protocols, for tests, the demo and load runs.

They never import ``engine`` or ``connectors``: a codec bug must not hide by
sitting on both ends of the wire.
"""
