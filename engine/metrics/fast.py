"""Counters and histograms for the hot path (per attempt): plain dict updates, collected at scrape
time. One event loop updates and collects them, so no lock is needed; ``prometheus_client``'s
own take a lock per update, which cost more than the update at thousands of attempts a second."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString


class FastCounter:
    """A labelled counter for the hot path: a dict increment, no lock (one event loop updates
    and collects it); exposed like a ``prometheus_client`` counter."""

    __slots__ = ("doc", "labels", "name", "values")

    def __init__(self, name: str, doc: str, labels: Sequence[str]) -> None:
        self.name, self.doc, self.labels = name, doc, list(labels)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, key: tuple[str, ...], n: float = 1) -> None:
        self.values[key] = self.values.get(key, 0) + n

    def touch(self, key: tuple[str, ...]) -> None:
        """Make the series exist at 0."""
        self.values.setdefault(key, 0)

    def family(self) -> Metric:
        fam = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for key, value in self.values.items():
            fam.add_metric(list(key), value)
        return fam


class FastHistogram:
    """A labelled histogram for the hot path: one bisect and two list updates per observation."""

    __slots__ = ("bounds", "doc", "labels", "name", "values")

    def __init__(self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.doc, self.labels, self.bounds = name, doc, list(labels), tuple(buckets)
        #: Per series: a count per bucket (not cumulative), the +Inf bucket, then the sum.
        self.values: dict[tuple[str, ...], list[float]] = {}

    def observe(self, key: tuple[str, ...], value: float) -> None:
        row = self.values.get(key)
        if row is None:
            row = self.values[key] = [0] * (len(self.bounds) + 2)
        row[bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def touch(self, key: tuple[str, ...]) -> None:
        if key not in self.values:
            self.values[key] = [0] * (len(self.bounds) + 2)

    def family(self) -> Metric:
        fam = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        for key, row in self.values.items():
            total, buckets = 0.0, []
            for le, n in zip(les, row[:-1], strict=True):
                total += n
                buckets.append((le, total))
            fam.add_metric(list(key), buckets, sum_value=row[-1])
        return fam
