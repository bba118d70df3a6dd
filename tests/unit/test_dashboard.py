"""The dashboard's pure parts: the palette's contrast, cells, the grid, histograms, the viewer check,
and the app's pages served from a store filled by hand (no cluster: tests/browser has the real one)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from starlette.testclient import TestClient

from labctl.dashboard import auth, model, palette
from labctl.dashboard.app import LOCAL_HOSTS, create_app
from labctl.dashboard.store import (
    ATTEMPT,
    COHORT,
    LEARNER,
    SESSION,
    Store,
    pick_attempt,
    pick_cohort,
    pick_learner,
    pick_session,
)

LAB = "foundation/hello-config"
OTHER = "foundation/second-lab"


# --- WCAG AA -------------------------------------------------------------------------------------


def test_contrast_is_computed_as_wcag_says() -> None:
    assert palette.contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert palette.contrast("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert palette.contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # famously just short


@pytest.mark.parametrize("name", sorted(palette.TEXT_PAIRS))
def test_every_text_colour_meets_aa_on_its_background(name: str) -> None:
    foreground, background = palette.TEXT_PAIRS[name]
    assert palette.contrast(foreground, background) >= 4.5, name


@pytest.mark.parametrize("name", sorted(palette.MARK_PAIRS))
def test_chart_marks_and_focus_ring_meet_non_text_contrast(name: str) -> None:
    foreground, background = palette.MARK_PAIRS[name]
    assert palette.contrast(foreground, background) >= 3.0, name


def test_every_grid_state_has_colours_and_a_symbol() -> None:
    for state in model.STATES:
        assert state.replace(" ", "-") in palette.STATES
        assert model.SYMBOLS[state]  # colour never carries the state alone
    assert ".s-passed{" in palette.css()


# --- a store filled by hand ----------------------------------------------------------------------


def learner_obj(cohort: str, email: str, phase: str = "Ready") -> dict[str, Any]:
    name = f"{cohort}-{email.split('@')[0]}"
    return {
        "metadata": {"name": name},
        "spec": {
            "cohort": cohort,
            "email": email,
            "displayName": email.split("@")[0].title(),
            "level": "foundation",
        },
        "status": {"namespace": name, "phase": phase, "stacks": {"mlflow": True}, "conditions": []},
    }


def session_obj(
    namespace: str, lab: str, phase: str | None, *, score: float = 0, attempts: int = 0
) -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": lab.replace("/", ".")},
        "spec": {"lab": lab, "version": "1.0.0"},
        "status": {
            "phase": phase,
            "score": score,
            "maxScore": 4,
            "attempts": attempts,
            "startedAt": "2025-05-01T10:00:00Z",
            "lastCheckAt": "2025-05-01T10:05:00Z" if attempts else None,
        },
    }


def attempt_obj(
    learner: dict[str, Any], lab: str, n: int, status: str, checks: dict[str, str]
) -> dict[str, Any]:
    results = [
        {
            "check": c,
            "status": s,
            "points": 1.0 if s == "passed" else 0.0,
            "maxPoints": 1.0,
            "evidence": '{"x": 1}',
        }
        for c, s in checks.items()
    ]
    score = sum(r["points"] for r in results)
    return {
        "metadata": {"name": f"{learner['metadata']['name']}.{lab}.{n}"},
        "spec": {
            "cohort": learner["spec"]["cohort"],
            "learner": learner["metadata"]["name"],
            "email": learner["spec"]["email"],
            "lab": lab,
            "attempt": n,
            "gradedAt": f"2025-05-01T10:0{n}:00Z",
            "status": status,
            "score": score,
            "maxScore": float(len(results)),
            "passMark": 1.0,
            "required": [],
            "results": results,
        },
    }


@pytest.fixture
def store() -> Store:
    """Cohort c1: ada passed, bob failed then errored, cy started, dee nothing; eve in another cohort."""
    s = Store()
    cohort = {
        "metadata": {"name": "c1"},
        "spec": {"level": "foundation", "labs": [LAB], "learners": [{}] * 4},
    }
    s.replace(COHORT, [pick_cohort(cohort)])
    people = [learner_obj("c1", e) for e in ("ada@uni.edu", "bob@uni.edu", "cy@uni.edu", "dee@uni.edu")]
    s.replace(LEARNER, [pick_learner(p) for p in [*people, learner_obj("c2", "eve@uni.edu")]])
    ada, bob, cy, _ = people
    s.replace(
        SESSION,
        [
            pick_session(session_obj(ada["metadata"]["name"], LAB, "Passed", score=3, attempts=2)),
            pick_session(session_obj(bob["metadata"]["name"], LAB, "Failed", score=1, attempts=2)),
            pick_session(session_obj(cy["metadata"]["name"], LAB, "Ready")),
        ],
    )
    checks_ok = {"greeting": "passed", "seeded": "passed", "service": "passed"}
    s.replace(
        ATTEMPT,
        [
            pick_attempt(attempt_obj(ada, LAB, 1, "failed", {**checks_ok, "service": "failed"})),
            pick_attempt(attempt_obj(ada, LAB, 2, "passed", checks_ok)),
            pick_attempt(attempt_obj(bob, LAB, 1, "failed", {**checks_ok, "seeded": "failed"})),
            pick_attempt(attempt_obj(bob, LAB, 2, "error", {**checks_ok, "seeded": "error"})),
            # graded by the instructor (labctl grade) at a lab nobody started
            pick_attempt(attempt_obj(cy, OTHER, 1, "failed", {"one": "failed"})),
        ],
    )
    return s


def test_cells_say_the_sessions_state_and_an_errored_check_is_not_a_failure(store: Store) -> None:
    ada, bob, cy, dee = store.learners_of("c1")
    assert model.cell(store, ada, LAB) == model.Cell("passed", 3, 4, 2, "2025-05-01T10:05:00Z")
    assert model.cell(store, bob, LAB).state == "error"  # session Failed, latest attempt error
    assert model.cell(store, cy, LAB).state == "in progress"
    assert model.cell(store, cy, OTHER) == model.Cell("failed", 0, 1, 1, "2025-05-01T10:01:00Z")
    assert model.cell(store, dee, LAB) == model.Cell("not started")
    assert model.cell(store, ada, LAB).text == "✓ 3/4"


def test_the_grid_has_the_cohorts_labs_then_the_others_and_filters_and_sorts(store: Store) -> None:
    cohort = store.cohorts["c1"]
    full = model.grid(store, cohort)
    assert full.labs == [LAB, OTHER]
    assert [r.email for r in full.rows] == ["ada@uni.edu", "bob@uni.edu", "cy@uni.edu", "dee@uni.edu"]
    assert full.counts[0] == {"passed": 1, "error": 1, "in progress": 1, "not started": 1}
    assert [r.email for r in model.grid(store, cohort, query="BOB").rows] == ["bob@uni.edu"]
    assert [r.email for r in model.grid(store, cohort, query="Dee").rows] == ["dee@uni.edu"]  # by name
    assert [r.email for r in model.grid(store, cohort, state="failed").rows] == ["cy@uni.edu"]
    assert [r.email for r in model.grid(store, cohort, state="failed", lab=LAB).rows] == []
    by_lab = model.grid(store, cohort, sort=f"lab:{LAB}", descending=True)
    assert [r.email for r in by_lab.rows][:2] == ["ada@uni.edu", "bob@uni.edu"]
    recent = [r.email for r in model.grid(store, cohort, sort="activity", descending=True).rows]
    assert recent == ["bob@uni.edu", "ada@uni.edu", "cy@uni.edu", "dee@uni.edu"]  # a tie: by e-mail


def test_lab_stats_count_what_the_gradebook_counts(store: Store) -> None:
    grades = model.lab_grades(store, "c1", LAB)
    stats = model.lab_stats(grades, LAB)
    assert stats.statuses == {"passed": 1, "failed": 0, "error": 1, "missing": 2}
    assert [(c.check, c.passed, c.graded) for c in stats.checks] == [
        ("greeting", 2, 2),
        ("seeded", 1, 2),
        ("service", 2, 2),
    ]
    assert stats.histogram == [("0", 0), ("1", 0), ("2", 0), ("3", 1)]


def test_histograms_bin_by_point_or_by_range() -> None:
    assert model.histogram([0, 2, 2, 4], 4) == [("0", 1), ("1", 0), ("2", 2), ("3", 0), ("4", 1)]
    wide = model.histogram([0, 49.5, 50, 100], 100)
    dash = "\u2013"
    assert len(wide) == 10 and wide[0] == (f"0{dash}10", 1) and wide[4] == (f"40{dash}50", 1)
    assert wide[9] == (f"90{dash}100", 1)
    assert model.histogram([], 0) == []


def test_a_watch_event_updates_one_cell_and_names_what_changed(store: Store) -> None:
    heard = []
    store.subscribe(heard.append)
    dee = store.learners_of("c1")[3]
    ns = dee["metadata"]["name"]
    store.apply(SESSION, "ADDED", pick_session(session_obj(ns, LAB, "Failed", score=1, attempts=1)))
    assert model.cell(store, dee, LAB).state == "failed"
    assert heard[-1].cohort == "c1" and heard[-1].learner == ns and heard[-1].lab == LAB
    store.apply(SESSION, "DELETED", pick_session(session_obj(ns, LAB, "Failed")))
    assert model.cell(store, dee, LAB).state == "not started"


def test_an_older_attempt_arriving_late_does_not_replace_the_latest(store: Store) -> None:
    ada = store.learners_of("c1")[0]
    store.apply(ATTEMPT, "ADDED", pick_attempt(attempt_obj(ada, LAB, 1, "failed", {"greeting": "failed"})))
    assert store.attempts[(ada["metadata"]["name"], LAB)]["spec"]["attempt"] == 2


# --- the viewer check ----------------------------------------------------------------------------


class FakeReviews:
    """Stands in for the API server's reviews: token -> user, and who may list Learners."""

    def __init__(self) -> None:
        self.users = {"good": {"username": "ann", "groups": ["instructors"]}, "weak": {"username": "lee"}}
        self.calls = 0

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if obj["kind"] == "TokenReview":
            user = self.users.get(obj["spec"]["token"])
            return {"status": {"authenticated": bool(user), "user": user or {}}}
        allowed = "instructors" in obj["spec"].get("groups", [])
        assert obj["spec"]["resourceAttributes"] == {
            "group": "labctl.dev",
            "resource": "learners",
            "verb": "list",
        }
        return {"status": {"allowed": allowed}}


def test_the_authoriser_says_401_403_or_200_and_remembers_for_a_while() -> None:
    reviews = FakeReviews()
    authoriser = auth.Authoriser(reviews)  # type: ignore[arg-type]
    assert authoriser.decide(None).status == 401
    assert authoriser.decide("forged").status == 401
    assert authoriser.decide("weak") == auth.Decision(
        403, "lee", "lee may not list learners (learners.labctl.dev)"
    )
    assert authoriser.decide("good") == auth.Decision(200, "ann")
    calls = reviews.calls
    assert authoriser.decide("good").status == 200
    assert reviews.calls == calls  # cached: a page's many requests cost one review


def test_the_token_comes_from_the_header_or_the_cookie() -> None:
    assert auth.bearer({"authorization": "Bearer abc"}, {}) == "abc"
    assert auth.bearer({"authorization": "Basic abc"}, {auth.COOKIE: "xyz"}) == "xyz"
    assert auth.bearer({}, {}) is None


# --- the app, served from the hand-filled store ---------------------------------------------------


@pytest.fixture
def client(store: Store) -> TestClient:
    store.synced.set()
    return TestClient(create_app(None, store, allowed_hosts=LOCAL_HOSTS), base_url="http://127.0.0.1")  # type: ignore[arg-type]


def test_the_grid_page_is_complete_html_without_script(client: TestClient) -> None:
    page = client.get("/cohorts/c1")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    text = page.text
    assert 'id="r:c1-ada"' in text and 'class="s-passed"' in text and "✓ 3/4" in text
    assert "eve@uni.edu" not in text  # another cohort's learner
    assert "Progress: showing 4 of 4 learners" in text
    assert "1 passed · 1 error · 1 in progress · 1 not started" in text
    filtered = client.get("/cohorts/c1", params={"q": "bob"}).text
    assert "showing 1 of 4 learners" in filtered and "ada@uni.edu" not in filtered


def test_the_lab_page_draws_the_numbers_it_tabulates(client: TestClient) -> None:
    text = client.get(f"/cohorts/c1/labs/{LAB}").text
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in text
    assert 'data-check="seeded" data-passed="1" data-graded="2"' in text
    assert 'data-status="missing">2<' in text


def test_unknown_pages_are_404_and_other_hosts_are_refused(client: TestClient) -> None:
    assert client.get("/cohorts/nope").status_code == 404
    assert client.get("/cohorts/c1/learners/c2-eve").status_code == 404  # not in c1
    # DNS rebinding: another name resolving to 127.0.0.1 must not reach a dashboard without auth.
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400


def test_with_auth_a_browser_is_asked_to_sign_in_and_a_signed_in_viewer_is_let_in(store: Store) -> None:
    store.synced.set()
    app = create_app(None, store, authoriser=auth.Authoriser(FakeReviews()))  # type: ignore[arg-type]
    client = TestClient(app, base_url="http://127.0.0.1")
    page = client.get("/cohorts/c1", headers={"accept": "text/html"})
    assert page.status_code == 401 and 'name="token"' in page.text
    assert client.get("/cohorts/c1", headers={"authorization": "Bearer weak"}).status_code == 403
    assert client.get("/cohorts/c1", headers={"authorization": "Bearer good"}).status_code == 200
    form = {"content-type": "application/x-www-form-urlencoded"}
    signed = client.post(
        "/login", content="token=good&next=//evil.example/", headers=form, follow_redirects=False
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/"  # never off-site
    assert "httponly" in signed.headers["set-cookie"].lower()
    assert client.get("/cohorts/c1").status_code == 200  # the cookie
    assert client.get("/healthz").status_code == 200  # probes need no token


def test_when_formats_times_for_people() -> None:
    from labctl.dashboard.pages import when

    assert when("2025-05-01T10:05:00Z") == "2025-05-01 10:05 UTC"
    assert when(dt.datetime(2025, 5, 1, tzinfo=dt.UTC).isoformat()) == "2025-05-01 00:00 UTC"
    assert when(None) == ""


# --- in-cluster: what `labctl install --dashboard` applies ------------------------------------------


def test_the_in_cluster_dashboard_only_reads_and_authorises_every_viewer() -> None:
    from labctl.provision.dashboard import render_dashboard
    from labctl.provision.install import render_install

    objects = render_dashboard("img:1")
    (role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    assert {verb for rule in role["rules"] for verb in rule["verbs"]} == {"get", "list", "watch"}
    delegator = [
        o
        for o in objects
        if o["kind"] == "ClusterRoleBinding" and o["roleRef"]["name"] == "system:auth-delegator"
    ]
    assert len(delegator) == 1
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "img:1" and container["args"][:3] == ["dashboard", "--auth", "token"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    kinds = [o["kind"] for o in render_install(controller=False)]
    assert "Deployment" not in kinds  # only with --dashboard
    assert render_install(controller=False, image="img:1", dashboard=True)[-len(objects) :] == objects
