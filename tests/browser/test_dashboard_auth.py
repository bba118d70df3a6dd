"""`labctl dashboard --auth token`, as it runs in-cluster: each viewer's token asked of the real API
server (TokenReview, then SubjectAccessReview: may they list Learners?)."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Browser, expect

from labctl.cohorts.credentials import request_token
from labctl.kube import Kube
from tests.browser.conftest import Classroom, Dashboard, start_dashboard
from tests.conftest import ClusterUnderTest
from tests.helpers.processes import stop_group

RBAC = "rbac.authorization.k8s.io/v1"


@dataclass(frozen=True)
class Tokens:
    viewer: str  # a ServiceAccount bound to a role that may list Learners
    nobody: str  # a ServiceAccount with no rights at all
    learner: str  # Ada's own token, from the kubeconfig labctl gave her


@pytest.fixture
def tokens(kube: Kube, namespace: str, classroom: Classroom) -> Iterator[Tokens]:
    role = f"t-dash-viewer-{uuid.uuid4().hex[:6]}"
    for sa in ("viewer", "nobody"):
        kube.apply(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace}}
        )
    kube.apply(
        {
            "apiVersion": RBAC,
            "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": [{"apiGroups": ["labctl.dev"], "resources": ["learners"], "verbs": ["get", "list"]}],
        }
    )
    kube.apply(
        {
            "apiVersion": RBAC,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": namespace}],
        }
    )
    learner = yaml.safe_load(Path(classroom.kubeconfigs["ada@uni.edu"]).read_text())["users"][0]["user"][
        "token"
    ]
    ten_minutes = timedelta(minutes=10)
    yield Tokens(
        viewer=request_token(kube, namespace, duration=ten_minutes, service_account="viewer"),
        nobody=request_token(kube, namespace, duration=ten_minutes, service_account="nobody"),
        learner=learner,
    )
    kube.delete(RBAC, "ClusterRoleBinding", role)
    kube.delete(RBAC, "ClusterRole", role)


@pytest.fixture
def guarded(test_cluster: ClusterUnderTest, classroom: Classroom, tmp_path: Path) -> Iterator[Dashboard]:
    served = start_dashboard(
        test_cluster, tmp_path / "dashboard.log", "--auth", "token", "--cohort", classroom.cohort
    )
    yield served
    stop_group(served.proc)


def fetch(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_who_may_list_learners_sees_the_cohort_and_nobody_else_does(
    guarded: Dashboard, classroom: Classroom, tokens: Tokens
) -> None:
    grid = f"{guarded.url}/cohorts/{classroom.cohort}"
    assert fetch(grid)[0] == 401
    assert fetch(grid, "not-a-token")[0] == 401
    status, text = fetch(grid, tokens.nobody)
    assert status == 403 and "may not list learners" in text
    assert fetch(grid, tokens.learner)[0] == 403  # a learner may not watch the class
    assert fetch(f"{guarded.url}/events?cohort={classroom.cohort}", tokens.learner)[0] == 403
    assert fetch(f"{grid}/gradebook.csv", tokens.nobody)[0] == 403
    status, text = fetch(grid, tokens.viewer)
    assert status == 200 and "ada@uni.edu" in text and f"Cohort {classroom.cohort}" in text
    status, text = fetch(f"{grid}/gradebook.csv?format=canvas", tokens.viewer)
    assert status == 200 and text.startswith("Student,ID,SIS User ID")


def test_a_browser_signs_in_with_a_token_and_is_told_when_it_may_not_look(
    browser: Browser, guarded: Dashboard, classroom: Classroom, tokens: Tokens, output_dir: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    response = page.goto(f"{guarded.url}/cohorts/{classroom.cohort}")
    assert response is not None and response.status == 401
    page.screenshot(path=str(output_dir / "login-1280x800.png"))
    page.fill("#token", tokens.learner)
    page.keyboard.press("Enter")
    expect(page.locator(".problem")).to_contain_text("may not list learners")
    page.screenshot(path=str(output_dir / "refused-1280x800.png"))
    page.fill("#token", tokens.viewer)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/cohorts/{classroom.cohort}")
    expect(page.locator("#grid")).to_contain_text("ada@uni.edu")
    expect(page.locator("form.signed-in")).to_contain_text("system:serviceaccount:")
    expect(page.locator("#live-status")).to_have_text("live")  # the event stream carries the cookie
    page.close()
