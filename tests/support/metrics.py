"""``GET /metrics`` asked over real HTTP, and read back with prometheus_client's own parser."""

from __future__ import annotations

import http.client
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.support.network import LOCALHOST
from tests.support.waiting import DEFAULT_TIMEOUT


def get_metrics(port: int, accept: str | None = None, method: str = "GET") -> tuple[int, str, bytes]:
    """``method /metrics`` on 127.0.0.1:``port``: the status, the content type and the body."""
    connection = http.client.HTTPConnection(LOCALHOST, port, timeout=DEFAULT_TIMEOUT)
    try:
        connection.request(method, "/metrics", headers={"Accept": accept} if accept else {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


@dataclass(frozen=True)
class Scrape:
    """One scrape's families, as Prometheus' text format parser reads them."""

    families: dict[str, Metric]

    @property
    def sample_names(self) -> set[str]:
        return {sample.name for family in self.families.values() for sample in family.samples}

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` that carry ``labels`` (whatever their other
        labels: with ``--workers``, every worker's); AssertionError when there is none."""
        values = self._values(name, labels)
        assert values, f"no sample {name}{labels or ''} in the scrape"
        return sum(values)

    def count(self, name: str, **labels: str) -> float:
        """``total``, or 0 when there is no such sample (a labelled counter not yet bumped)."""
        return sum(self._values(name, labels))

    def _values(self, name: str, labels: dict[str, str]) -> list[float]:
        return [sample.value for family in self.families.values() for sample in family.samples
                if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items())]

    def labels(self, name: str, label: str) -> set[str]:
        """The values of ``label`` among the samples called ``name``."""
        return {sample.labels[label] for family in self.families.values() for sample in family.samples
                if sample.name == name and label in sample.labels}


def scrape(port: int) -> Scrape:
    """``GET /metrics``, which must answer 200 in Prometheus' text format, parsed."""
    status, content_type, body = get_metrics(port)
    assert status == 200 and content_type.startswith("text/plain"), (status, content_type, body[:300])
    return Scrape({family.name: family for family in text_string_to_metric_families(body.decode())})
