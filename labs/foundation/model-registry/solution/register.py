"""Register the models of the experiment wine-registry and name the champion.

    python register.py

1. every finished run's model becomes a version of the registered model wine-classifier (once:
   running the script again registers only runs it has not registered yet);
2. the alias champion moves to the version whose run has the best accuracy;
3. that version is tagged with data_version: the md5 of the data its run was trained on.
"""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient

EXPERIMENT = "wine-registry"
MODEL = "wine-classifier"


def main() -> None:
    client = MlflowClient()
    runs = mlflow.search_runs(
        experiment_names=[EXPERIMENT],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["metrics.accuracy DESC", "attributes.start_time DESC"],
    )
    if runs.empty:
        raise SystemExit(f"no finished runs in experiment {EXPERIMENT}: run train.py first")

    version_of: dict[str, str] = {}  # run id -> version number
    for run_id in runs["run_id"]:
        known = client.search_model_versions(f"name = '{MODEL}' and run_id = '{run_id}'")
        if known:
            version_of[run_id] = known[0].version
            continue
        # (1) the run's model becomes a new version of MODEL.
        version = mlflow.register_model(f"runs:/{run_id}/model", MODEL)
        version_of[run_id] = version.version
        print(f"registered run {run_id[:8]} as version {version.version}")

    best = runs.iloc[0]
    champion = version_of[best["run_id"]]
    # (2) the alias follows the best model, whatever its number.
    client.set_registered_model_alias(MODEL, "champion", champion)
    # (3) the version records which data it was trained on.
    client.set_model_version_tag(MODEL, champion, "data_version", best["params.data_version"])
    print(
        f"champion: version {champion} (accuracy {best['metrics.accuracy']:.3f}, "
        f"data_version {best['params.data_version']})"
    )


if __name__ == "__main__":
    main()
