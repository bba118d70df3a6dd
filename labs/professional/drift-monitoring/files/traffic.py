"""Send your model server traffic: clean rows from the training data, or drifted ones.

    python traffic.py --url http://127.0.0.1:8080 --seconds 60               # clean
    python traffic.py --url http://127.0.0.1:8080 --seconds 90 --drift hue   # hue + 3 std

Every half second it POSTs 20 rows drawn from data/wine.csv to the server's KServe V1 endpoint
(/v1/models/wine:predict); with --drift, one feature of every row is shifted by --shift of its
standard deviations (a miscalibrated sensor, a new supplier). Every 10 seconds it prints the
server's own model_drift_score, read from its /metrics.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import urllib.request

import pandas as pd


def drift_score(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("model_drift_score "):
                return f"{float(line.split()[1]):.2f}"
    return "absent"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the model server")
    parser.add_argument("--model", default="wine")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--drift", metavar="FEATURE", help="shift this feature (a column of data/wine.csv)")
    parser.add_argument("--shift", type=float, default=3.0, help="in standard deviations of the feature")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = pd.read_csv("data/wine.csv").drop(columns="target")
    rows = data.to_numpy().tolist()
    column = list(data.columns).index(args.drift) if args.drift else None
    shift = args.shift * statistics.pstdev(data[args.drift]) if args.drift else 0.0
    rng = random.Random(args.seed)
    endpoint = f"{args.url}/v1/models/{args.model}:predict"
    what = f"{args.drift} +{args.shift:g} std" if args.drift else "clean"
    started = last = time.monotonic()
    sent = 0
    while time.monotonic() - started < args.seconds:
        batch = [list(rng.choice(rows)) for _ in range(20)]
        if column is not None:
            for row in batch:
                row[column] += shift
        body = json.dumps({"instances": batch}).encode()
        request = urllib.request.Request(endpoint, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            json.load(response)
        sent += 1
        if time.monotonic() - last >= 10:
            last = time.monotonic()
            print(
                f"{last - started:5.0f}s  {what}: {sent} requests, model_drift_score {drift_score(args.url)}"
            )
        time.sleep(0.5)
    print(f"done: {sent} requests of 20 rows ({what}), model_drift_score {drift_score(args.url)}")


if __name__ == "__main__":
    main()
