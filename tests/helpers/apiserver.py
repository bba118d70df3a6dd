"""Read the API server's own request counters: how many writes really happened."""

from __future__ import annotations

import ssl
import urllib.request
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from labctl.kube import Kube

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
# Written continuously by kwok and the kube controllers themselves, whatever labctl does.
NOISE = frozenset({"leases", "events", "nodes", "pods", "endpointslices", "endpoints"})


def _get(kube: Kube, path: str) -> str:
    conf = kube.configuration
    context = (
        ssl.create_default_context(cafile=conf.ssl_ca_cert)
        if conf.verify_ssl
        else (ssl._create_unverified_context())
    )
    if conf.cert_file:
        context.load_cert_chain(conf.cert_file, conf.key_file)
    request = urllib.request.Request(conf.host + path)
    if token := conf.get_api_key_with_prefix("BearerToken") or conf.get_api_key_with_prefix("authorization"):
        request.add_header("Authorization", token)
    with urllib.request.urlopen(request, context=context, timeout=10) as resp:
        return resp.read().decode()


def write_counts(kube: Kube) -> Counter[str]:
    """Write requests served so far, per ``resource[/subresource]``, noise excluded."""
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(_get(kube, "/metrics")):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            labels = sample.labels
            if not sample.name.endswith("_total") or labels.get("verb") not in WRITE_VERBS:
                continue
            if labels.get("resource") in NOISE:
                continue
            key = labels.get("resource", "") + (
                f"/{labels['subresource']}" if labels.get("subresource") else ""
            )
            counts[key] += int(sample.value)
    return counts
