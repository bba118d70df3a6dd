"""Wait until the learner's Prometheus has an alerting rule loaded (and, with --scraped, scrapes wine-model).

    python wait_for_prometheus.py "$PROMETHEUS_URL" WineFeatureDrift --scraped

The kubelet syncs the alert-rules ConfigMap into Prometheus's pod within about a minute, then the
reloader reloads it: what README step 6 waits for on the Alerts page before sending traffic. The
solution and the mistakes wait alike, so the grader meets each of them with its rule in place.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prometheus_url")
    parser.add_argument("rule", help="the alerting rule's name")
    parser.add_argument("--scraped", action="store_true", help='also wait for up{app="wine-model"} == 1')
    parser.add_argument("--seconds", type=float, default=300)
    args = parser.parse_args()
    deadline = time.monotonic() + args.seconds

    def get(path: str) -> dict:
        with urllib.request.urlopen(args.prometheus_url + path, timeout=10) as response:
            return json.load(response)["data"]

    while True:
        rules = [r["name"] for g in get("/api/v1/rules")["groups"] for r in g["rules"]]
        up = get("/api/v1/query?query=up%7Bapp%3D%22wine-model%22%7D")["result"]
        scraped = any(s["value"][1] == "1" for s in up)
        if args.rule in rules and (scraped or not args.scraped):
            print(f"Prometheus has {args.rule} loaded" + (" and scrapes wine-model" if scraped else ""))
            return
        if time.monotonic() > deadline:
            sys.exit(f"after {args.seconds:g} s: rules {rules}, up {up}")
        time.sleep(5)


if __name__ == "__main__":
    main()
