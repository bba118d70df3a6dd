"""Checks of a learner's alerting: rule files Prometheus accepts, and a drift alert that behaves.

``prometheus.rules_valid`` runs the real ``promtool check rules`` over the learner's rule files
(a path, the ``alert-rules`` ConfigMap labctl's Prometheus mounts, or a PrometheusRule) and quotes
its errors. ``prometheus.drift_alert`` sends real traffic to the learner's model server while
watching their Prometheus and Alertmanager (the scenario is in :mod:`graders._prometheus_drift`):
the alert must stay quiet on clean traffic, fire on drifted traffic and resolve after.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import model_validator

from graders._prometheus_drift import DriftAlertParams, Scenario
from graders.core import Context, GraderError, Outcome, Params, check
from graders.kube_checks import kube_get

PROMTOOL = "/usr/bin/promtool"
RULES_CONFIG_MAP = "alert-rules"  # what labctl's Prometheus mounts (labctl.provision.stacks.prometheus)
PROMETHEUS_RULE = ("monitoring.coreos.com/v1", "PrometheusRule")


class RulesValidParams(Params):
    path: str | None = None  # a rule file, or a directory of *.yaml / *.yml rule files
    # A ConfigMap in the learner's namespace, each .yaml/.yml key a file; with no source at all,
    # the alert-rules ConfigMap labctl's Prometheus reads.
    config_map: str | None = None
    prometheus_rule: str | None = None  # a PrometheusRule in the learner's namespace: its spec
    alert: str | None = None  # an alerting rule that must be defined
    promtool: str = PROMTOOL

    @model_validator(mode="after")
    def _one_source(self) -> RulesValidParams:
        given = [n for n in ("path", "config_map", "prometheus_rule") if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(f"give one of path, config_map, prometheus_rule (got {', '.join(given)})")
        return self


class _NoRules(Exception):
    """The learner's rules are not where the lab says: their failure, with this feedback."""


def _rule_files(ctx: Context, params: RulesValidParams) -> dict[str, str]:
    """``{what the learner calls it: text}`` for every rule file of the source."""
    if params.path:
        path = Path(params.path)
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
        if not path.exists() or not files:
            raise _NoRules(
                f"no rule file at {path}: write your alert rules there (YAML, `groups:` at the top)"
            )
        return {str(f): f.read_text(errors="replace") for f in files}
    if params.prometheus_rule:
        obj = kube_get(ctx, *PROMETHEUS_RULE, params.prometheus_rule)
        if obj is None:
            raise _NoRules(f"no PrometheusRule {params.prometheus_rule} in namespace {ctx.namespace}")
        return {f"PrometheusRule {params.prometheus_rule}": yaml.safe_dump(obj.get("spec") or {})}
    name = params.config_map or RULES_CONFIG_MAP
    obj = kube_get(ctx, "v1", "ConfigMap", name)
    if obj is None:
        raise _NoRules(
            f"no ConfigMap {name} in namespace {ctx.namespace}: put your rule files in it, "
            f"e.g. `kubectl create configmap {name} --from-file=rules.yaml`"
        )
    data = {k: v for k, v in (obj.get("data") or {}).items() if k.endswith((".yaml", ".yml"))}
    if not data:
        keys = ", ".join(sorted(obj.get("data") or {})) or "none"
        raise _NoRules(
            f"ConfigMap {name} has no key ending in .yaml or .yml (keys: {keys}): Prometheus loads none"
        )
    return {f"ConfigMap {name} key {key}": text for key, text in sorted(data.items())}


def _promtool(ctx: Context, params: RulesValidParams, files: dict[str, str]) -> tuple[bool, list[str]]:
    """Run promtool over ``files``: ``(ok, error lines)``, temporary paths named as the learner knows them."""
    with tempfile.TemporaryDirectory(prefix="rules-") as tmp:
        paths = {}
        for index, (label, text) in enumerate(files.items()):
            paths[str(Path(tmp) / f"rules-{index}.yaml")] = label
            Path(tmp, f"rules-{index}.yaml").write_text(text)
        try:
            proc = subprocess.run(
                [params.promtool, "check", "rules", *paths],
                capture_output=True,
                text=True,
                timeout=ctx.remaining(at_most=30),
                check=False,
            )
        except FileNotFoundError:
            raise GraderError(f"promtool not found at {params.promtool}") from None
        except subprocess.TimeoutExpired:
            raise GraderError("promtool check rules did not finish in time") from None
    lines: list[str] = []
    for line in (proc.stderr + proc.stdout).splitlines():
        line = line.strip()
        if not line or line.startswith(("Checking ", "SUCCESS", "FAILED")):
            continue
        for path, label in paths.items():
            line = line.replace(path, label)
        if line not in lines:  # promtool repeats some YAML errors
            lines.append(line)
    return proc.returncode == 0, lines


def _alerts(files: dict[str, str]) -> list[str]:
    names: list[str] = []
    for text in files.values():
        doc = yaml.safe_load(text) or {}
        for group in doc.get("groups") or []:
            names += [str(rule["alert"]) for rule in group.get("rules") or [] if "alert" in rule]
    return names


@check("prometheus.rules_valid", RulesValidParams)
def rules_valid(ctx: Context, params: RulesValidParams) -> Outcome:
    """The learner's alert rules pass `promtool check rules` and define the named alert."""
    try:
        files = _rule_files(ctx, params)
    except _NoRules as exc:
        return Outcome(False, str(exc))
    ok, errors = _promtool(ctx, params, files)
    evidence: dict[str, Any] = {"files": list(files), "promtool": errors}
    if not ok:
        quoted = "\n".join(f"  {line}" for line in errors[:10])
        return Outcome(False, f"promtool check rules rejected your rules:\n{quoted}", evidence)
    alerts = evidence["alerts"] = _alerts(files)
    if params.alert and params.alert not in alerts:
        found = ", ".join(alerts) or "none"
        return Outcome(
            False,
            f"no alerting rule named {params.alert} in {', '.join(files)} (alerts defined: {found}); "
            f"add one with `alert: {params.alert}`",
            evidence,
        )
    named = f", alert {params.alert} defined" if params.alert else ""
    return Outcome(
        True, f"alert rules valid (promtool): {len(alerts)} alert(s) in {len(files)} file(s){named}", evidence
    )


@check("prometheus.drift_alert", DriftAlertParams)
def drift_alert(ctx: Context, params: DriftAlertParams) -> Outcome:
    """A drift alert stays quiet on clean traffic, fires on drifted traffic, resolves after."""
    return Scenario(ctx, params).run()
