"""Each page's data, rendered with the templates; and each event stream's messages.

Grid, charts and cohorts come from the store. A learner's page and the gradebook downloads read
the cluster afresh when asked (every attempt with its evidence; the gradebook exactly as
`labctl gradebook export` reads it): one read per page view, never a poll.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request

from labctl.api.v1alpha1 import API_VERSION
from labctl.cohorts import operations as cohorts
from labctl.dashboard import charts, model
from labctl.dashboard.auth import Decision
from labctl.dashboard.live import Viewer
from labctl.dashboard.store import ATTEMPT, COHORT, LEARNER, SESSION, Change, Store
from labctl.grading import records
from labctl.grading.gradebook import FORMATS, Assignment, export_gradebook
from labctl.kube import Kube

ENV = Environment(
    loader=PackageLoader("labctl.dashboard", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def when(text: str | None) -> str:
    """An RFC 3339 time as people read it in a table: ``2025-05-01 14:03 UTC``."""
    if not text:
        return ""
    try:
        moment = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return str(text)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def pretty_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text or "{}"), indent=2, sort_keys=True)
    except ValueError:
        return text


ENV.filters["when"] = when
ENV.filters["pretty_json"] = pretty_json
ENV.globals["STATES"] = model.STATES
ENV.globals["SYMBOLS"] = model.SYMBOLS


def cell_id(learner: str, lab: str) -> str:
    return f"c:{learner}:{lab}"


ENV.globals["cell_id"] = cell_id


def counts_text(counts: Any) -> str:
    """A lab column's footer: ``3 passed · 1 failed · 2 not started``."""
    return " · ".join(f"{counts[s]} {s}" for s in model.STATES if counts.get(s))


ENV.filters["counts_text"] = counts_text


def not_found() -> str:
    return ENV.get_template("error.html").render(
        title="Not found", status=404, message="No such cohort, lab or learner here.", user=""
    )


class Pages:
    """The pages of one dashboard: its store for what is watched, its Kube for afresh reads."""

    def __init__(self, kube: Kube, store: Store) -> None:
        self.kube = kube
        self.store = store

    def _render(self, request: Request, name: str, **context: Any) -> str:
        user = getattr(request.state, "user", "")
        return ENV.get_template(name).render(user=user, **context)

    def cohorts(self, request: Request, *, signed_in: bool) -> str:
        return self._render(request, "cohorts.html", title="Cohorts", cohorts=model.cohort_rows(self.store))

    def cohort(self, request: Request, name: str, params: dict[str, str]) -> str | None:
        cohort = self.store.cohorts.get(name)
        if cohort is None:
            return None
        sort = params.get("sort", "learner")
        descending = params.get("dir") == "desc"
        grid = model.grid(
            self.store,
            cohort,
            query=params.get("q", "").strip(),
            state=params.get("state", ""),
            lab=params.get("lab", ""),
            sort=sort,
            descending=descending,
        )

        def sort_url(key: str) -> str:
            flip = "asc" if sort == key and descending else "desc" if sort == key else "asc"
            kept = {k: v for k, v in params.items() if k in ("q", "state", "lab") and v}
            return "?" + urlencode({**kept, "sort": key, "dir": flip})

        def sorted_as(key: str) -> str:
            if sort != key:
                return "none"
            return "descending" if descending else "ascending"

        return self._render(
            request,
            "cohort.html",
            title=f"Cohort {name}",
            grid=grid,
            params=params,
            sort_url=sort_url,
            sorted_as=sorted_as,
            formats=FORMATS,
        )

    def lab(self, request: Request, cohort: str, lab: str) -> str | None:
        if cohort not in self.store.cohorts:
            return None
        grades = model.lab_grades(self.store, cohort, lab)
        stats = model.lab_stats(grades, lab)
        return self._render(
            request,
            "lab.html",
            title=f"{lab} · {cohort}",
            cohort=cohort,
            lab=lab,
            stats=stats,
            checks_chart=charts.check_pass_rates(stats.checks, title=f"{lab}: pass rate per check"),
            scores_chart=charts.score_histogram(stats.histogram, title=f"{lab}: score distribution"),
        )

    def learner(self, request: Request, cohort: str, name: str) -> str | None:
        picked = self.store.learners.get(name)
        if picked is None or picked["spec"]["cohort"] != cohort:
            return None
        live = self.kube.get(API_VERSION, LEARNER, name) or {}
        namespace = self.store.namespace_of(picked)
        sessions = sorted(
            self.kube.list(API_VERSION, SESSION, namespace=namespace), key=lambda s: s["spec"]["lab"]
        )
        attempts = records.history(self.kube, learner=name)
        attempts.sort(key=lambda a: (a["spec"]["lab"], -int(a["spec"]["attempt"])))
        cohort_obj = self.store.cohorts.get(cohort) or {"labs": [], "name": cohort}
        labs = model.cohort_labs(self.store, cohort_obj, [picked])
        with self.store.lock:
            cells = [(lab, model.cell(self.store, picked, lab)) for lab in labs]
        return self._render(
            request,
            "learner.html",
            title=picked["spec"]["email"],
            cohort=cohort,
            learner=picked,
            live=live,
            status=live.get("status") or {},
            sessions=sessions,
            attempts=attempts,
            cells=cells,
        )

    def gradebook(self, cohort: str, fmt: str) -> tuple[str, str] | str:
        """The gradebook text and its file name, as `labctl gradebook export` writes it; else a problem."""
        if fmt not in FORMATS:
            return f"unknown gradebook format {fmt!r}; choose one of {', '.join(FORMATS)}"
        obj = self.kube.get(API_VERSION, COHORT, cohort)
        if obj is None:
            return f'cohort "{cohort}" not found'
        attempts = records.history(self.kube, cohort=cohort)
        labs = list(obj["spec"].get("labs") or []) or sorted({a["spec"]["lab"] for a in attempts})
        if not labs:
            return f"cohort {cohort} has no labs and no grades yet: nothing to export"
        grades = records.learner_grades(cohorts.learners(self.kube, cohort), attempts, labs)
        text = export_gradebook(grades, fmt=fmt, assignments=[Assignment(lab) for lab in labs])
        return text, f"{cohort}-{fmt}.csv"

    def updates(self, viewer: Viewer, changes: list[Change], overflowed: bool) -> dict[str, Any]:
        """One event-stream message: cells to change in place, or ``reload`` when the page's shape
        changed (a learner or lab added, a fresh list, a viewer too far behind)."""
        if overflowed or viewer.cohort is None or viewer.learner is not None:
            return {"reload": True}
        if any(c.kind == COHORT or (c.learner is None) for c in changes):
            return {"reload": True}
        cohort = self.store.cohorts.get(viewer.cohort)
        if cohort is None:
            return {"reload": True}
        cells: dict[str, dict[str, str]] = {}
        environments: dict[str, str] = {}
        touched_labs: set[str] = set()
        with self.store.lock:
            for change in changes:
                learner = self.store.learners.get(change.learner or "")
                if learner is None:
                    return {"reload": True}
                if change.kind == LEARNER:
                    environments[f"env:{change.learner}"] = learner["status"].get("phase") or "Pending"
                    continue
                if change.kind in (SESSION, ATTEMPT) and change.lab:
                    c = model.cell(self.store, learner, change.lab)
                    labs = model.cohort_labs(self.store, cohort, [learner])
                    row = model.Row(learner, [model.cell(self.store, learner, lab) for lab in labs])
                    cells[cell_id(learner["metadata"]["name"], change.lab)] = {
                        "cls": c.css,
                        "text": c.text,
                        "title": c.title,
                        "state": c.state,
                        "last": when(row.last_activity),
                    }
                    touched_labs.add(change.lab)
        learners = self.store.learners_of(viewer.cohort)
        counts = {
            f"n:{lab}": counts_text(model.column_counts(self.store, learners, lab)) for lab in touched_labs
        }
        return {"cells": cells, "env": environments, "counts": counts}

    def login(self, request: Request, *, next_url: str, problem: str = "") -> str:
        return self._render(request, "login.html", title="Sign in", next_url=next_url, problem=problem)

    def refused(self, request: Request, decision: Decision) -> str:
        return self._render(
            request,
            "error.html",
            title="Not allowed",
            status=decision.status,
            message=decision.reason,
            who=decision.user,
        )
