"""CustomResourceDefinitions for labctl.dev, generated from the pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from labctl.api import labs, v1alpha1
from labctl.api.schema import structural
from labctl.core.labels import GROUP


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return structural(model.model_json_schema(by_alias=True, mode="validation"))


def _crd(
    kind: str,
    plural: str,
    short: list[str],
    spec: type[BaseModel],
    status: type[BaseModel] | None,
    columns: list[dict[str, str]],
    *,
    scope: str = "Cluster",
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "labctl"}},
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
                "categories": ["labctl"],
            },
            "versions": [
                {
                    "name": v1alpha1.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}} if status is not None else {},
                    "additionalPrinterColumns": [
                        *columns,
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": _schema(spec),
                                **({"status": _schema(status)} if status is not None else {}),
                            },
                        }
                    },
                }
            ],
        },
    }


def crds() -> list[dict[str, Any]]:
    """Every CRD labctl installs, in apply order."""
    return [
        _crd(
            "Cohort",
            "cohorts",
            ["coh"],
            v1alpha1.CohortSpec,
            v1alpha1.CohortStatus,
            [
                {"name": "Level", "type": "string", "jsonPath": ".spec.level"},
                {"name": "Learners", "type": "integer", "jsonPath": ".status.learners"},
                {"name": "Ready", "type": "integer", "jsonPath": ".status.ready"},
                {"name": "Expires", "type": "date", "jsonPath": ".spec.expires"},
            ],
        ),
        _crd(
            "Learner",
            "learners",
            ["lrn"],
            v1alpha1.LearnerSpec,
            v1alpha1.LearnerStatus,
            [
                {"name": "Cohort", "type": "string", "jsonPath": ".spec.cohort"},
                {"name": "Email", "type": "string", "jsonPath": ".spec.email"},
                {"name": "Namespace", "type": "string", "jsonPath": ".status.namespace"},
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            ],
        ),
        _crd(
            "GradeAttempt",
            "gradeattempts",
            ["grade", "grades"],
            v1alpha1.GradeAttemptSpec,
            None,  # an attempt is a record: spec only, never changed (see grading.records)
            [
                {"name": "Cohort", "type": "string", "jsonPath": ".spec.cohort"},
                {"name": "Email", "type": "string", "jsonPath": ".spec.email"},
                {"name": "Lab", "type": "string", "jsonPath": ".spec.lab"},
                {"name": "Attempt", "type": "integer", "jsonPath": ".spec.attempt"},
                {"name": "Status", "type": "string", "jsonPath": ".spec.status"},
                {"name": "Score", "type": "number", "jsonPath": ".spec.score"},
                {"name": "Max", "type": "number", "jsonPath": ".spec.maxScore"},
            ],
        ),
        _crd(
            "Lab",
            "labs",
            [],
            labs.LabSpec,
            None,  # a published version is immutable (admission): spec only
            [
                {"name": "Lab", "type": "string", "jsonPath": ".spec.id"},
                {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
                {"name": "Title", "type": "string", "jsonPath": ".spec.definition.title"},
            ],
        ),
        _crd(
            "LabSession",
            "labsessions",
            ["lsn"],
            labs.LabSessionSpec,
            labs.LabSessionStatus,
            [
                {"name": "Lab", "type": "string", "jsonPath": ".spec.lab"},
                {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Score", "type": "number", "jsonPath": ".status.score"},
                {"name": "Max", "type": "number", "jsonPath": ".status.maxScore"},
                {"name": "Expires", "type": "date", "jsonPath": ".status.expiresAt"},
            ],
            scope="Namespaced",
        ),
    ]
