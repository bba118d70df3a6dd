"""Checks on a learner's MLflow: the runs of an experiment, and a registered model's versions.

``mlflow.experiment`` asks whether an experiment holds enough finished runs, with the params,
metrics and artifacts the lab requires; ``mlflow.registered_model`` whether a model is
registered with enough versions, an alias on the right one, the tags that record its lineage,
and a source run whose metrics pass. Both take ``since`` (labs pass ``"{session_start}"``):
only runs started since then count, and the judged version must have been created since then,
so work from before the session does not pass.

The learner's tracking server is part of the stack labctl provisions in their namespace, so
when it cannot be reached at all (refused, no DNS name, timing out, answering 5xx) that is our
side's trouble: a :class:`GraderError` (status ``error``, re-gradable), never a silent zero.
Everything the server answers about the learner's work (an experiment, run, model, alias or tag
that is not there or not right) is a failed outcome whose feedback names the object, the
measured and the expected value.

We speak MLflow's REST API through :mod:`labctl.clients.mlflow` (plain ``urllib``, not
``MlflowClient``: see there why), each request bounded by the check's own deadline
(:mod:`graders._mlflow_tracking`), so graders import without MLflow installed.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from graders._mlflow_tracking import Mlflow, TrackingParams
from graders.core import Context, Outcome, Params, check
from labctl.core.suggest import closest

_SHOWN = 3  # offending runs named in feedback; the rest are counted

# -- parameters ---------------------------------------------------------------------------------

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_WORDS = {">=": "at least", ">": "more than", "<=": "at most", "<": "less than"}
_RULE = re.compile(r"^\s*(?P<metric>[^<>=\s][^<>=]*?)\s*(?P<op>>=|<=|>|<)\s*(?P<value>\S+)\s*$")


class MetricRule(Params):
    """A metric threshold: ``{metric: accuracy, op: ">=", value: 0.9}`` or ``"accuracy >= 0.9"``."""

    metric: str = Field(min_length=1)
    op: Literal[">=", ">", "<=", "<"]
    value: float

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        match = _RULE.match(raw)
        if match is None:
            raise ValueError(f"expected 'metric >= value' (or >, <=, <), got {raw!r}")
        return match.groupdict()

    def passes(self, measured: float) -> bool:
        return _OPS[self.op](measured, self.value)

    @property
    def maximise(self) -> bool:
        return self.op in (">=", ">")

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


class KeyRule(Params):
    """A param (or tag) that must be set: ``"name"``, or with a value, ``"name=value"``."""

    key: str = Field(min_length=1)
    value: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        key, eq, value = raw.partition("=")
        return {"key": key.strip(), "value": value.strip() if eq else None}

    def __str__(self) -> str:
        return self.key if self.value is None else f"{self.key}={self.value}"


def _utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is UTC (what ``{session_start}`` is, and MLflow's timestamps)."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


# An ISO-8601 time (labs pass "{session_start}"): what is graded must be newer than it.
Since = Annotated[datetime | None, AfterValidator(_utc)]


def millis(moment: datetime) -> int:
    """``moment`` as MLflow stamps times: milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def iso(ms: int | float | str) -> str:
    """An MLflow timestamp (ms) as ISO-8601 UTC to the second, as feedback shows it."""
    return datetime.fromtimestamp(int(ms) / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_recent(ms: int | float | str | None, since: datetime | None) -> bool:
    """Whether a timestamp is at or after ``since`` (always, without one; never, without a stamp)."""
    return since is None or (ms is not None and int(ms) >= millis(since))


class ExperimentParams(TrackingParams):
    experiment: str = Field(min_length=1)
    min_runs: int = Field(default=1, ge=0)
    params: list[KeyRule] = Field(default_factory=list)
    metrics: list[MetricRule] = Field(default_factory=list)
    scope: Literal["best", "every"] = "best"  # params and metrics: on the best run, or on every run
    best_by: str | None = None  # the metric that ranks runs; default: the first of `metrics`
    best_is: Literal["max", "min"] | None = None  # default: as that rule's op says (>= is max)
    artifacts: list[str] = Field(default_factory=list)  # paths on the best run
    since: Since = None  # only runs started at or after this count

    @field_validator("artifacts")
    @classmethod
    def _relative(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not path.strip("/") or ".." in path.split("/"):
                raise ValueError(f"artifact path {path!r}: expected a path inside the run, like 'model'")
        return [path.strip("/") for path in paths]


class RegisteredModelParams(TrackingParams):
    model: str = Field(min_length=1)
    min_versions: int = Field(default=1, ge=1)
    alias: str | None = None  # the version judged; else `version`; else the newest version
    version: int | None = Field(default=None, ge=1)
    required_tags: list[str] = Field(default_factory=list)  # on the version, any value
    expected_tags: dict[str, str] = Field(default_factory=dict)  # on the version, these values
    tags_from_run_params: dict[str, str] = Field(default_factory=dict)  # version tag -> run param
    tag_hints: dict[str, str] = Field(default_factory=dict)  # what a tag means, for the feedback
    run_metrics: list[MetricRule] = Field(default_factory=list)  # on the version's source run
    require_run: bool = True  # the version must come from a run that still exists
    since: Since = None  # the judged version must have been created at or after this

    @model_validator(mode="after")
    def _one_selector(self) -> RegisteredModelParams:
        if self.alias is not None and self.version is not None:
            raise ValueError("give at most one of alias or version")
        return self


# -- judging runs -------------------------------------------------------------------------------

Miss = tuple[str, str]  # what the run has ("has accuracy 0.69"), and what is wanted instead


def _pairs(items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {str(item["key"]): str(item.get("value", "")) for item in items or []}


def run_name(run: dict[str, Any]) -> str:
    info = run["info"]
    name = info.get("run_name") or _pairs(run.get("data", {}).get("tags")).get("mlflow.runName")
    return f"'{name}' ({info['run_id'][:8]})" if name else info["run_id"][:8]


def metrics_of(run: dict[str, Any]) -> dict[str, float]:
    return {m["key"]: float(m["value"]) for m in run.get("data", {}).get("metrics", [])}


def params_of(run: dict[str, Any]) -> dict[str, str]:
    return _pairs(run.get("data", {}).get("params"))


def judge(run: dict[str, Any], rule: MetricRule | KeyRule) -> Miss | None:
    """How ``run`` misses ``rule``; None when it meets it."""
    if isinstance(rule, MetricRule):
        measured = metrics_of(run).get(rule.metric)
        if measured is None:
            return f"has no metric '{rule.metric}'", "log it with mlflow.log_metric"
        if not rule.passes(measured):
            return f"has {rule.metric} {measured:.4g}", f"{_WORDS[rule.op]} {rule.value:g} is required"
        return None
    value = params_of(run).get(rule.key)
    if value is None:
        return f"has no param '{rule.key}'", "log it with mlflow.log_param"
    if rule.value is not None and not _same(value, rule.value):
        return f"has param {rule.key}={value!r}", f"expected {rule.value!r}"
    return None


def _same(logged: str, wanted: str) -> bool:
    """Equal as text, or as numbers (a logged C=0.3 is the C=0.30 the lab asks for)."""
    try:
        return logged == wanted or float(logged) == float(wanted)
    except ValueError:
        return False


def misses(subject: str, run: dict[str, Any], rules: Sequence[MetricRule | KeyRule]) -> list[str]:
    """A sentence for each rule ``run`` misses: "<subject> has accuracy 0.69; at least 0.9 is required"."""
    return [f"{subject} {miss[0]}; {miss[1]}" for rule in rules if (miss := judge(run, rule)) is not None]


def best_run(runs: list[dict[str, Any]], by: str | None, *, maximise: bool = True) -> dict[str, Any] | None:
    """The run with the best ``by`` metric (among runs that logged it); without one, the latest."""
    if by is None:
        return max(runs, key=lambda r: r["info"].get("start_time", 0), default=None)
    scored = [r for r in runs if by in metrics_of(r)]
    pick = max if maximise else min
    return pick(scored, key=lambda r: metrics_of(r)[by], default=None)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _are(n: int) -> str:
    return "is" if n == 1 else "are"


def _at_least(n: int) -> str:
    return f"at least {n} {_are(n)} required"


def _feedback(problems: list[str]) -> str:
    """One sentence per problem, so each reads on its own."""
    return " ".join(p[0].upper() + p[1:] + ("" if p.endswith(("?", ".")) else ".") for p in problems)


# -- mlflow.experiment --------------------------------------------------------------------------


@check("mlflow.experiment", ExperimentParams)
def experiment(ctx: Context, params: ExperimentParams) -> Outcome:
    """An MLflow experiment with enough finished runs, whose params, metrics and artifacts pass."""
    api = Mlflow(params, ctx)
    name = params.experiment
    evidence: dict[str, Any] = {"tracking_uri": api.uri, "experiment": name}
    found = api.get("experiments/get-by-name", experiment_name=name)
    if found is None:
        return Outcome(False, _feedback([_missing_experiment(api, name)]), evidence)
    exp = found["experiment"]
    evidence["experiment_id"] = exp["experiment_id"]
    if exp.get("lifecycle_stage") == "deleted":
        return Outcome(False, f"Experiment '{name}' was deleted; restore it or create it again.", evidence)

    search = {"experiment_ids": [exp["experiment_id"]], "max_results": 1000, "run_view_type": "ACTIVE_ONLY"}
    runs: list[dict[str, Any]] = []
    older: list[dict[str, Any]] = []
    for run in api.pages("POST", "runs/search", search, "runs"):
        (runs if is_recent(run["info"].get("start_time"), params.since) else older).append(run)
    finished = [r for r in runs if r["info"].get("status") == "FINISHED"]
    evidence.update(finished_runs=len(finished), other_runs=len(runs) - len(finished))
    if params.since is not None:
        evidence.update(since=params.since.isoformat(), older_runs=len(older))
    rules: list[MetricRule | KeyRule] = [*params.params, *params.metrics]
    needed = max(params.min_runs, 1 if rules or params.artifacts else 0)  # something to judge
    problems = []
    if len(finished) < needed:
        problems.append(_too_few_runs(name, len(finished), len(runs), needed, params.since, len(older)))
    by, maximise = _ranking(params)
    best = best_run(finished, by, maximise=maximise)
    if best is not None:
        evidence.update(best_run=best["info"]["run_id"], best_metrics=metrics_of(best))
    elif finished and by is not None:
        problems.append(f"no finished run of experiment '{name}' has the metric '{by}'")
    if params.scope == "every":
        problems += _every_run_problems(finished, rules)
    elif best is not None:
        problems += misses(f"the best run, {run_name(best)},", best, rules)
    if best is not None and params.artifacts:
        problems += _artifact_problems(api, best, params.artifacts, evidence)
    if problems:
        return Outcome(False, _feedback(problems), evidence)
    summary = f"experiment '{name}' has {_plural(len(finished), 'finished run')}"
    if best is not None and by is not None:
        summary += f"; the best, {run_name(best)}, has {by} {metrics_of(best)[by]:.4g}"
    return Outcome(True, _feedback([summary]), evidence)


def _ranking(params: ExperimentParams) -> tuple[str | None, bool]:
    """The metric that makes a run the best, and whether higher is better."""
    rule = next((r for r in params.metrics if params.best_by in (None, r.metric)), None)
    by = params.best_by or (rule.metric if rule else None)
    if params.best_is is not None:
        return by, params.best_is == "max"
    return by, rule.maximise if rule else True


def _missing_experiment(api: Mlflow, name: str) -> str:
    search = {"max_results": 1000, "view_type": "ACTIVE_ONLY"}
    names = [e["name"] for e in api.pages("POST", "experiments/search", search, "experiments")]
    close = closest(name, names)
    hint = f"; did you mean '{close}'?" if close else f" (mlflow.set_experiment({name!r}) creates it)"
    return f"experiment '{name}' does not exist on your MLflow server{hint}"


def _too_few_runs(
    name: str, finished: int, runs: int, needed: int, since: datetime | None = None, older: int = 0
) -> str:
    when = f" started since {since_text(since)}" if since is not None else ""
    text = f"experiment '{name}' has {_plural(finished, 'finished run')}{when}; {_at_least(needed)}"
    notes = []
    if runs > finished:
        notes.append(f"{runs - finished} more {_are(runs - finished)} still running, failed or killed")
    if older:
        notes.append(f"{_plural(older, 'older run')} {'does' if older == 1 else 'do'} not count")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def since_text(since: datetime) -> str:
    return since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _every_run_problems(runs: list[dict[str, Any]], rules: list[MetricRule | KeyRule]) -> list[str]:
    """One problem per rule, naming the runs that miss it (the first few)."""
    problems = []
    for rule in rules:
        failing = [f"run {run_name(run)} {miss[0]}" for run in runs if (miss := judge(run, rule))]
        if failing:
            more = f" and {len(failing) - _SHOWN} more" if len(failing) > _SHOWN else ""
            shown = ", ".join(failing[:_SHOWN]) + more
            problems.append(f"{len(failing)} of {_plural(len(runs), 'finished run')} miss {rule}: {shown}")
    return problems


def _artifact_problems(
    api: Mlflow, run: dict[str, Any], paths: list[str], evidence: dict[str, Any]
) -> list[str]:
    """Paths missing from ``run``: among its artifacts, or inside a model it logged (MLflow 3 keeps
    ``log_model(name="model")`` apart from the run's artifacts, as a logged model named "model")."""
    run_id = run["info"]["run_id"]
    models = logged_models(api, run)
    missing = []
    for path in paths:
        head, _, rest = path.partition("/")
        in_model = head in models and (not rest or _listed(api, _model_listing(models[head]), rest))
        if not (in_model or _listed(api, ("artifacts/list", {"run_id": run_id}, "path"), path)):
            missing.append(path)
    top = (api.get("artifacts/list", run_id=run_id) or {}).get("files", [])
    have = [f["path"] + "/" * bool(f.get("is_dir")) for f in top] + [f"logged model '{m}'" for m in models]
    evidence.update(artifacts=have, missing_artifacts=missing)
    if not missing:
        return []
    return [
        f"the best run, {run_name(run)}, has no artifact {' or '.join(repr(m) for m in missing)}"
        f" (it has {', '.join(have) or 'no artifacts'})"
    ]


def logged_models(api: Mlflow, run: dict[str, Any]) -> dict[str, str]:
    """Name -> id of the models ``run`` logged (its MLflow 3 outputs)."""
    models: dict[str, str] = {}
    for output in run.get("outputs", {}).get("model_outputs", []):
        found = api.get(f"logged-models/{output['model_id']}")
        if found is not None:
            info = found["model"]["info"]
            models.setdefault(info["name"], info["model_id"])
    return models


Listing = tuple[str, dict[str, str], str]  # endpoint, query, the query key that names the folder


def _model_listing(model_id: str) -> Listing:
    return (f"logged-models/{model_id}/artifacts/directories", {}, "artifact_directory_path")


def _listed(api: Mlflow, listing: Listing, path: str) -> bool:
    """Whether ``path`` (a file or a folder) is in its parent folder, which ``listing`` lists."""
    parent, _, leaf = path.rpartition("/")
    endpoint, query, folder_key = listing
    found = api.get(endpoint, **query, **{folder_key: parent}) or {}
    return any(f["path"].rpartition("/")[2] == leaf for f in found.get("files", []))


# -- mlflow.registered_model ---------------------------------------------------------------------


@check("mlflow.registered_model", RegisteredModelParams)
def registered_model(ctx: Context, params: RegisteredModelParams) -> Outcome:
    """A registered model with enough versions, an alias, lineage tags and a source run that passes."""
    api = Mlflow(params, ctx)
    name = params.model
    evidence: dict[str, Any] = {"tracking_uri": api.uri, "model": name}
    found = api.get("registered-models/get", name=name)
    if found is None:
        return Outcome(False, _feedback([_missing_model(api, name)]), evidence)
    aliases = {a["alias"]: int(a["version"]) for a in found["registered_model"].get("aliases", [])}
    search = {"filter": f"name='{_quoted(name)}'", "max_results": 200}
    versions = sorted(
        int(v["version"]) for v in api.pages("GET", "model-versions/search", search, "model_versions")
    )
    evidence.update(versions=versions, aliases=aliases)
    problems = []
    if len(versions) < params.min_versions:
        problems.append(
            f"model '{name}' has {_plural(len(versions), 'version')}; {_at_least(params.min_versions)}"
        )
    number = _selected(params, aliases, versions, problems)
    if number is not None:
        problems += _version_problems(api, params, number, evidence)
    if problems:
        return Outcome(False, _feedback(problems), evidence)
    chosen = f"alias '{params.alias}' points at version {number}" if params.alias else f"version {number}"
    return Outcome(
        True,
        _feedback([f"model '{name}' has {_plural(len(versions), 'version')}; {chosen}, which passes"]),
        evidence,
    )


def _missing_model(api: Mlflow, name: str) -> str:
    search = {"max_results": 1000}
    names = [m["name"] for m in api.pages("GET", "registered-models/search", search, "registered_models")]
    close = closest(name, names)
    hint = f"; did you mean '{close}'?" if close else " (register it with mlflow.register_model)"
    return f"no model named '{name}' is registered on your MLflow server{hint}"


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _selected(
    params: RegisteredModelParams, aliases: dict[str, int], versions: list[int], problems: list[str]
) -> int | None:
    """The version judged; None (the reason added to ``problems``) when there is none."""
    if params.alias is not None:
        if params.alias not in aliases:
            others = f" (its aliases: {', '.join(sorted(aliases))})" if aliases else ""
            problems.append(f"alias '{params.alias}' is not set on model '{params.model}'{others}")
        return aliases.get(params.alias)
    if params.version is not None and params.version not in versions:
        problems.append(f"model '{params.model}' has no version {params.version}")
        return None
    return params.version or (versions[-1] if versions else None)


def _version_problems(
    api: Mlflow, params: RegisteredModelParams, number: int, evidence: dict[str, Any]
) -> list[str]:
    found = api.get("model-versions/get", name=params.model, version=str(number))
    if found is None:  # deleted since the search
        return [f"model '{params.model}' has no version {number}"]
    version = found["model_version"]
    tags, run_id = _pairs(version.get("tags")), version.get("run_id") or ""
    evidence.update(version=number, version_tags=tags, run_id=run_id or None)
    label = f"version {number}"
    problems = []
    if version.get("status", "READY") != "READY":
        problems.append(f"{label} of model '{params.model}' is {version['status']}, not READY")
    if params.since is not None:
        created = version.get("creation_timestamp")
        evidence.update(since=params.since.isoformat(), version_created=iso(created) if created else None)
        if not is_recent(created, params.since):
            problems.append(stale_version(params.model, number, created, params.since))
    problems += [
        f"{label} has no tag {tag}{_hint(params, tag)}" for tag in params.required_tags if tag not in tags
    ]
    for tag, expected in params.expected_tags.items():
        problems += _tag_problem(params, label, tag, tags.get(tag), f"expected {expected!r}", expected)
    if not (params.require_run or params.run_metrics or params.tags_from_run_params):
        return problems
    run = (api.get("runs/get", run_id=run_id) or {}).get("run") if run_id else None
    if run is None or run["info"].get("lifecycle_stage") == "deleted":
        why = f"its source run {run_id} no longer exists" if run_id else "it was not registered from a run"
        return [*problems, f"{label} has no source run: {why} (log and register the model inside a run)"]
    evidence.update(run_metrics=metrics_of(run), run_params=params_of(run))
    subject = f"{label}'s source run, {run_name(run)},"
    problems += misses(subject, run, params.run_metrics)
    run_params = params_of(run)
    for tag, param in params.tags_from_run_params.items():
        if param not in run_params:
            problems.append(f"{subject} has no param '{param}' to compare {label}'s tag {tag} with")
        else:
            wanted = f"expected {run_params[param]!r}, the param {param} of its source run"
            problems += _tag_problem(params, label, tag, tags.get(tag), wanted, run_params[param])
    return problems


def stale_version(model: str, number: int, created: int | str | None, since: datetime) -> str:
    when = f"was registered at {iso(created)}" if created else "has no creation time"
    return (
        f"version {number} of model '{model}' {when}, before {since_text(since)}:"
        " register a model you trained since then"
    )


def _tag_problem(
    params: RegisteredModelParams, label: str, tag: str, actual: str | None, wanted: str, expected: str
) -> list[str]:
    if actual is None:
        return [f"{label} has no tag {tag}; {wanted}{_hint(params, tag)}"]
    if actual != expected:
        return [f"{label}'s tag {tag} is {actual!r}, {wanted}{_hint(params, tag)}"]
    return []


def _hint(params: RegisteredModelParams, tag: str) -> str:
    return f" ({params.tag_hints[tag]})" if tag in params.tag_hints else ""
