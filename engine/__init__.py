"""Volna engine: intake, waves, gates, pacing, dispatch, correlation, results."""
