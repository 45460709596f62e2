"""The reliability suite's chaos runs: a wave over all four channels against the simulators while
dispatcher processes, Redis, the AMI link, the gateway and the clock misbehave, then the
architecture's guarantees checked from Redis and from what the simulators received.

``plan`` turns one seed into everything random (tasks, faults, simulator seeds), ``world``
runs the simulators, Redis and the dispatcher processes (``proc``), ``faults`` plays the
fault schedule, ``invariants`` gives the verdicts, ``run`` ties them together (the pytest
test and ``load/chaos.py`` both call it). See docs/reliability.md, section "Reliability: chaos runs, bad
input, limits".
"""
