"""The instructor's dashboard as an instructor sees it, in Debian's chromium.

Each learner acts through the real CLI with their own kubeconfig, in another process; what the page
shows is compared with what `labctl cohort status` and `labctl gradebook export` say.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import LAB, Classroom, Dashboard, as_learner, solve
from tests.conftest import ClusterUnderTest, cluster_args, labctl

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
STATE_OF_CLASS = {
    "s-passed": "passed",
    "s-failed": "failed",
    "s-error": "error",
    "s-in-progress": "in progress",
    "s-not-started": "not started",
}


def grid_cells(page: Page) -> dict[str, dict[str, Any]]:
    """e-mail -> lab -> (state, text) as the grid shows them."""
    return page.evaluate(
        """() => {
        const labs = [...document.querySelectorAll('#grid thead th')].map(th => th.dataset.lab || null);
        const out = {};
        for (const row of document.querySelectorAll('#grid tbody tr')) {
          const email = row.querySelector('th a').textContent.trim();
          out[email] = {};
          [...row.cells].forEach((cell, i) => {
            if (labs[i]) out[email][labs[i]] = [cell.className.split(' ')[0], cell.textContent.trim()];
          });
        }
        return out;
    }"""
    )


def test_the_grid_shows_the_cohorts_true_state(
    browser: Browser, dashboard: Dashboard, classroom: Classroom, test_cluster: ClusterUnderTest
) -> None:
    status = json.loads(
        labctl("cohort", "status", classroom.cohort, "-o", "json", *cluster_args(test_cluster)).stdout
    )
    page = browser.new_page(viewport=DESKTOP)
    page.goto(f"{dashboard.url}/cohorts/{classroom.cohort}")
    shown = grid_cells(page)
    assert set(shown) == {row["learner"] for row in status}
    for row in status:
        for lab, truth in row["progress"].items():
            css, text = shown[row["learner"]][lab]
            state, _, score = truth.rpartition(" ") if "/" in truth else (truth, "", "")
            assert STATE_OF_CLASS[css] == state, (row["learner"], lab, truth, text)
            assert text.endswith(score), (row["learner"], lab, truth, text)
    assert shown["ada@uni.edu"][LAB][0] == "s-failed"
    assert shown["grace@uni.edu"][LAB][0] == "s-in-progress"
    assert shown["linus@uni.edu"][LAB][0] == "s-not-started"
    env = page.locator("#grid tbody tr").first.locator("td.env")
    assert env.inner_text() == "Ready"
    page.close()


def test_a_learners_check_in_another_process_changes_the_cell_within_2s(
    browser: Browser, dashboard: Dashboard, classroom: Classroom
) -> None:
    grace = classroom.kubeconfigs["grace@uni.edu"]
    page = browser.new_page(viewport=DESKTOP)
    page.goto(f"{dashboard.url}/cohorts/{classroom.cohort}")
    expect(page.locator("#live-status")).to_have_text("live")  # the event stream is open
    page.evaluate("window.notReloaded = true")
    cell = page.locator(f'#grid tbody tr:has(a:text-is("grace@uni.edu")) td:nth-child({5})')
    assert "s-in-progress" in (cell.get_attribute("class") or "")

    solve(grace)
    checked = as_learner(grace, "lab", "check", LAB)  # the learner's process; graded by the controller
    done = time.monotonic()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    expect(cell).to_have_class("s-passed flash", timeout=2000)
    elapsed = time.monotonic() - done
    assert cell.inner_text() == "✓ 4/4"
    assert page.evaluate("window.notReloaded") is True  # updated in place, not by reloading
    footer = page.locator(f'[id="n:{LAB}"]')
    expect(footer).to_contain_text("1 passed")
    print(f"cell changed {elapsed:.2f}s after `labctl lab check` returned")
    page.close()


def test_the_charts_numbers_equal_the_gradebooks(
    browser: Browser, dashboard: Dashboard, classroom: Classroom, test_cluster: ClusterUnderTest
) -> None:
    exported = labctl(
        "gradebook", "export", "--cohort", classroom.cohort, "--format", "csv", *cluster_args(test_cluster)
    ).stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    statuses = Counter(r[f"{LAB} status"] for r in rows)
    scores = Counter(r[f"{LAB} score"] for r in rows if r[f"{LAB} status"] in ("passed", "failed"))

    page = browser.new_page(viewport=DESKTOP)
    page.goto(f"{dashboard.url}/cohorts/{classroom.cohort}/labs/{LAB}")
    for status in ("passed", "failed", "error", "missing"):
        shown = page.locator(f'#statuses td[data-status="{status}"]').inner_text()
        assert int(shown) == statuses.get(status, 0), status
    bars = page.locator('svg[data-chart="scores"] g[data-bin]')
    drawn = {bars.nth(i).get_attribute("data-bin"): int(bars.nth(i).get_attribute("data-count") or 0)
             for i in range(bars.count())}  # fmt: skip
    assert {k: v for k, v in drawn.items() if v} == dict(scores)
    assert sum(drawn.values()) == statuses["passed"] + statuses["failed"]
    # Per check: the latest attempts, as `labctl grades` records them.
    checks = page.locator('svg[data-chart="checks"] g[data-check]')
    assert checks.count() == 3
    per_check = {
        checks.nth(i).get_attribute("data-check"): (
            int(checks.nth(i).get_attribute("data-passed") or 0),
            int(checks.nth(i).get_attribute("data-graded") or 0),
        )
        for i in range(checks.count())
    }
    assert {graded for _, graded in per_check.values()} == {statuses["passed"] + statuses["failed"]}
    # The page's download is the CLI's export, byte for byte.
    with page.expect_download() as download:
        page.goto(f"{dashboard.url}/cohorts/{classroom.cohort}")
        page.get_by_role("link", name="csv", exact=True).click()
    assert Path(download.value.path()).read_text() == exported
    page.close()


def test_the_grid_is_keyboard_navigable(browser: Browser, dashboard: Dashboard, classroom: Classroom) -> None:
    page = browser.new_page(viewport=DESKTOP)
    page.goto(f"{dashboard.url}/cohorts/{classroom.cohort}")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "q"  # the search box comes first
    for _ in range(40):  # on through the form, the downloads, the headers: to the grid's first cell
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.tagName") == "TD":
            break
    first = page.evaluate("document.activeElement.closest('tr').id")
    assert first.startswith("r:"), "Tab never reached the grid's cells"
    page.keyboard.press("ArrowDown")
    second = page.evaluate("document.activeElement.closest('tr').id")
    assert second != first and page.evaluate("document.activeElement.tagName") == "TD"
    page.keyboard.press("Home")
    assert page.evaluate("document.activeElement.tagName") == "A"  # the learner's link, first column
    page.keyboard.press("Enter")
    page.wait_for_url("**/learners/**")
    expect(page.get_by_role("heading", level=2, name="Recorded attempts")).to_be_visible()
    page.close()


def test_the_static_views_work_with_javascript_off(
    browser: Browser, dashboard: Dashboard, classroom: Classroom
) -> None:
    context = browser.new_context(java_script_enabled=False, viewport=DESKTOP)
    page = context.new_page()
    page.goto(f"{dashboard.url}/cohorts/{classroom.cohort}")
    assert "Progress: showing 3 of 3 learners" in page.inner_text("caption")
    page.fill("#q", "ada")
    page.keyboard.press("Enter")  # the form's own submit: filtered by the server
    page.wait_for_url("**q=ada**")
    assert "showing 1 of 3 learners" in page.inner_text("caption")
    page.get_by_role("link", name="ada@uni.edu").click()
    expect(page.locator("details.attempt").first).to_contain_text("attempt 1")
    expect(page.locator("#phase")).to_have_text("Ready")
    page.goto(f"{dashboard.url}/cohorts/{classroom.cohort}/labs/{LAB}")
    assert page.locator('svg[data-chart="checks"]').count() == 1
    context.close()


PAGES = {
    "cohorts": "/",
    "grid": "/cohorts/{cohort}",
    "lab": f"/cohorts/{{cohort}}/labs/{LAB}",
    "learner": "/cohorts/{cohort}/learners/{learner}",
}


def test_every_page_reads_at_1280x800_and_on_a_phone(
    browser: Browser, dashboard: Dashboard, classroom: Classroom, output_dir: Path
) -> None:
    learner = labctl_learner_name(browser, dashboard, classroom)
    for size, viewport in (("1280x800", DESKTOP), ("phone", PHONE)):
        page = browser.new_page(viewport=viewport, device_scale_factor=1)
        for name, path in PAGES.items():
            page.goto(dashboard.url + path.format(cohort=classroom.cohort, learner=learner))
            # Nothing wider than the screen but the tables' own scrolling regions.
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} at {size} is {overflow}px wider than the screen"
            page.screenshot(path=str(output_dir / f"{name}-{size}.png"), full_page=True)
        page.close()
    assert len(list(output_dir.glob("*.png"))) >= 8


def labctl_learner_name(browser: Browser, dashboard: Dashboard, classroom: Classroom) -> str:
    page = browser.new_page()
    page.goto(f"{dashboard.url}/cohorts/{classroom.cohort}")
    href = page.get_by_role("link", name="ada@uni.edu").get_attribute("href") or ""
    page.close()
    return href.rsplit("/", 1)[1]
