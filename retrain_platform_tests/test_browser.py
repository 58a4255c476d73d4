"""The Dagster UI and serving's Retrain page in a real browser, as a person uses them.

Debian's Chromium (`apt-get install chromium`) driven by the Python `playwright` package; never
`playwright install`, which downloads a browser of its own. Without a chromium binary the test
skips and says why, except in CI (`RETRAIN_REQUIRE_BROWSER=1`, set by .ci/run), where it fails.

`retrain-platform dev` runs on free ports in a fresh home. In the Dagster UI: Skip the community
dialog, open the retrain job, open its launchpad from the Materialize menu, set a short data window,
click Materialize, wait for the run to succeed, and open `production_model` and its lineage. Then
serving's Retrain page: type the token, click Retrain, see the run's id, its status move on, a
link that opens the run in Dagster, and once the run is terminated in Dagster, how it ended.
Screenshots go to RETRAIN_SCREENSHOT_DIR when it is set (`docs/screenshots` for the README), to the
test's temporary folder otherwise.

Serving's API docs (/docs, /redoc) are opened on serving alone, with every request the page makes
that leaves 127.0.0.1 refused: they must render with nothing from outside.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from retrain_platform.names import TRIGGER_TAG
from retrain_platform.settings import Settings
from serving.app import create_app

from .serving_fixtures import UvicornThread
from .test_dev_launcher import free_port

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
VIEWPORT = {"width": 1280, "height": 800}
TOKEN = "browser-test-token"
# What a person types into the launchpad: the retrain job on one month instead of the whole year.
SHORT_WINDOW = """ops:
  raw_data:
    config:
      window_days: 30
      window_end: "2013-02-28"
  candidate_model:
    config:
      max_rounds: 20
"""
# The Dagster UI's "Force termination immediately": the plain terminate answers TerminateRunFailure
# for a run that `retrain-platform dev` launched.
TERMINATE = """mutation Terminate($runId: String!) {
  terminateRun(runId: $runId, terminatePolicy: MARK_AS_CANCELED_IMMEDIATELY) {
    __typename ... on TerminateRunFailure { message } ... on PythonError { message }
  }
}"""
RUNS = "{ runsOrError { ... on Runs { results { runId status jobName tags { key value } } } } }"
LOCATION = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def chromium_path() -> str:
    """Debian's chromium, or a skip (a failure in CI) saying what is missing."""
    required = os.environ.get("RETRAIN_REQUIRE_BROWSER") == "1"
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    problem = None
    if path is None:
        problem = "no chromium binary on PATH or at /usr/bin/chromium (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (pip install -e '.[test]')"
    if problem and required:
        pytest.fail(f"the browser test is mandatory here (RETRAIN_REQUIRE_BROWSER=1) but {problem}")
    if problem:
        pytest.skip(problem)
    return path


def wait_until(what: str, predicate, timeout: float, process: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"retrain-platform dev exited with {process.returncode} while waiting for {what}"
        try:
            value = predicate()
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            value = None
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout} s")


@pytest.fixture
def shoot(tmp_path):
    """Screenshot the page as a small PNG: 128 colours are plenty for a UI, a third of the bytes."""
    from PIL import Image

    folder = Path(os.environ.get("RETRAIN_SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=path)
        with Image.open(path) as image:
            small = image.convert("RGB").quantize(128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        small.save(path, optimize=True)
        return path

    return shoot


@pytest.fixture
def platform(tmp_path):
    """`retrain-platform dev` in a fresh home: a fresh Dagster instance, no model yet."""
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in ("dagster", "mlflow", "serving")}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RETRAIN_", "DAGSTER_", "MLFLOW_"))}
    env = {**clean, "RETRAIN_HOME": str(tmp_path / "home"), "RETRAIN_DAGSTER_URL": urls["dagster"],
           "RETRAIN_MLFLOW_UI_URL": urls["mlflow"], "RETRAIN_SERVING_URL": urls["serving"],
           "RETRAIN_ADMIN_TOKEN": TOKEN, "RETRAIN_SERVING_POLL_SECONDS": "1"}  # fmt: skip
    log = (tmp_path / "dev.log").open("wb")
    process = subprocess.Popen([str(Path(sys.executable).with_name("retrain-platform")), "dev"], env=env,
                               start_new_session=True, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_until("the Dagster UI", lambda: httpx.get(f"{urls['dagster']}/server_info", timeout=2).is_success, 120,
                   process)  # fmt: skip
        wait_until("the code location to load", lambda: httpx.post(f"{urls['dagster']}/graphql", json={"query": LOCATION},
                   timeout=10).json()["data"]["workspaceOrError"]["locationEntries"][0]["loadStatus"] == "LOADED",
                   120, process)  # fmt: skip
        wait_until("serving", lambda: httpx.get(f"{urls['serving']}/health/live", timeout=2).is_success, 120, process)
        yield urls, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        log.close()
        print((tmp_path / "dev.log").read_text(errors="replace")[-2000:])


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_materialize_in_the_dagster_ui_then_retrain_from_serving(browser, platform, shoot):
    from playwright.sync_api import expect

    page = browser.new_page(viewport=VIEWPORT)
    urls, process = platform
    dagster, serving = urls["dagster"], urls["serving"]
    started = time.monotonic()

    def mark(what: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {what}", flush=True)

    # -- The Dagster UI: the retrain job, its launchpad, Materialize ------------------------------
    page.goto(f"{dagster}/locations/retrain_platform/jobs/retrain")
    # A fresh instance greets every page with "Join the Dagster community" until it is skipped.
    page.get_by_role("button", name="Skip").click(timeout=60_000)
    expect(page.get_by_role("dialog")).to_have_count(0)
    materialize_all = page.get_by_role("button", name="Materialize all")
    expect(materialize_all).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Ingest, validate, train, evaluate and promote if every gate passes.")).to_be_visible()
    # The menu beside "Materialize all" opens the launchpad, where a person sets the run's config.
    page.get_by_role("button", name="arrow_drop_down").click()
    page.get_by_role("menuitem", name="Open launchpad").click()
    launchpad = page.get_by_role("dialog").filter(has_text="Launchpad")
    editor = launchpad.locator(".CodeMirror")
    expect(editor).to_contain_text("window_days: 365")  # the defaults: the whole year
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(SHORT_WINDOW)  # as pasted: no auto-indent in between
    expect(editor).to_contain_text('window_end: "2013-02-28"')
    materialize = launchpad.locator("button").filter(has_text=re.compile(r"^\s*Materialize\s*$"))
    expect(materialize).to_be_enabled()  # the new config is validated
    expect(launchpad.get_by_text("No errors")).to_be_visible()
    shoot(page, "dagster-launchpad")
    materialize.click()
    mark("Materialize clicked")

    # The UI opens the new run; wait there for it to succeed.
    page.wait_for_url(re.compile(rf"/runs/{UUID}"), timeout=30_000)
    run_id = re.search(UUID, page.url).group(0)
    expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=180_000)
    mark(f"run {run_id[:8]} succeeded in the UI")
    expect(page.get_by_text("RUN_SUCCESS").first).to_be_visible()
    shoot(page, "dagster-run-success")
    runs = httpx.post(f"{dagster}/graphql", json={"query": RUNS}, timeout=30).json()["data"]["runsOrError"]["results"]
    (run,) = [r for r in runs if r["runId"] == run_id]
    assert run["status"] == "SUCCESS" and run["jobName"] == "retrain"
    assert {"key": "retrain_platform/promotion", "value": "exclusive"} in run["tags"]

    # production_model: which version, which data window, and its lineage back to the data.
    page.goto(f"{dagster}/assets/production_model")
    metadata = page.get_by_role("row").filter(has_text="data_window")
    expect(metadata).to_contain_text("2013-01-30..2013-02-28", timeout=30_000)
    expect(page.get_by_role("row").filter(has_text="model_uri")).to_contain_text("models:/retrain-flights@production")
    expect(page.get_by_text(re.compile(r"^\d+ (seconds?|minutes?) ago$")).first).to_be_visible()  # latest materialization
    expect(page.get_by_text("reevaluate_challenger").first).to_be_visible()  # the automation panel has loaded
    shoot(page, "dagster-production-model")
    page.get_by_role("tab", name="Lineage").click()
    page.get_by_role("button", name="Upstream").click()
    page.get_by_role("button", name="All", exact=True).click()
    expect(page).to_have_url(re.compile(r"view=lineage&lineageScope=upstream&lineageDepth=\d"))
    # The graph keeps its zoom when the depth changes; the same address opened afresh (as a shared
    # link is) fits the whole lineage in the window.
    lineage = browser.new_page(viewport=VIEWPORT)
    lineage.goto(page.url)
    for asset in ("raw_data", "validated_features", "candidate_model", "evaluation_report", "production_model"):
        expect(lineage.get_by_text(asset, exact=True).first).to_be_visible(timeout=30_000)
    lineage.wait_for_timeout(1_000)  # the graph settles its layout after the nodes appear
    shoot(lineage, "dagster-lineage-production-model")
    lineage.close()
    mark("production_model and its lineage shown")

    # -- Serving picked the promotion up; its Retrain page launches the job ----------------------
    wait_until("serving on version 1", lambda: httpx.get(f"{serving}/health", timeout=5).json()["model_version"] == "1",
               60, process)  # fmt: skip
    page.goto(f"{serving}/retrain")
    expect(page.get_by_text("Serving version 1.")).to_be_visible()
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Retrain").click()
    status = page.locator("#status")
    expect(status).to_have_text(re.compile(rf"Run {UUID}: (QUEUED|STARTING|STARTED)\."), timeout=30_000)
    retrain_run = re.search(UUID, status.inner_text()).group(0)
    assert retrain_run != run_id
    # The page follows the run: past the queue once the daemon has launched it.
    expect(status).to_have_text(re.compile(rf"Run {retrain_run}: (STARTING|STARTED|SUCCESS)\."), timeout=60_000)
    link = status.get_by_role("link", name="Open in Dagster")
    assert link.get_attribute("href") == f"{dagster}/runs/{retrain_run}"
    shoot(page, "serving-retrain")
    mark(f"Retrain clicked: run {retrain_run[:8]} launched from serving")
    with page.context.expect_page() as opened:  # the link opens a new tab
        link.click()
    dagster_tab = opened.value
    expect(dagster_tab.get_by_text(retrain_run[:8]).first).to_be_visible(timeout=30_000)
    runs = httpx.post(f"{dagster}/graphql", json={"query": RUNS}, timeout=30).json()["data"]["runsOrError"]["results"]
    (launched,) = [r for r in runs if r["runId"] == retrain_run]
    assert {"key": TRIGGER_TAG, "value": "serving"} in launched["tags"]
    mark("the link opens the run in Dagster")

    # The page follows the run to its end and says what it did. A whole year's retrain takes
    # minutes here, so the run is canceled in Dagster (what rejected, promoted and failed runs
    # say is checked over HTTP, on real runs).
    terminated = httpx.post(f"{dagster}/graphql", json={"query": TERMINATE, "variables": {"runId": retrain_run}},
                            timeout=30).json()["data"]["terminateRun"]  # fmt: skip
    assert terminated["__typename"] == "TerminateRunSuccess", terminated
    outcome = page.locator("#outcome")
    expect(outcome).to_have_text("Canceled before a model was promoted.", timeout=120_000)
    expect(outcome).to_have_class("canceled")
    expect(status).to_have_text(re.compile(rf"Run {retrain_run}: CANCELED\."))
    mark("the page says how the run ended")


def test_api_docs_render_with_nothing_from_outside(browser, tmp_path, shoot):
    """Swagger UI and ReDoc render serving's API from its own server; any other host is refused."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport=VIEWPORT)
    requested, refused = [], []

    def only_this_machine(route) -> None:
        url = route.request.url
        requested.append(url)
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    context.route("**/*", only_this_machine)  # the context's pages and their workers alike
    page = context.new_page()
    # Serving alone, with an empty registry: the docs need no model.
    with UvicornThread(create_app(Settings(home=tmp_path / "home"))) as serving:
        page.goto(f"{serving.url}/docs")
        expect(page.get_by_text("/predict", exact=True)).to_be_visible(timeout=30_000)
        expect(page.get_by_role("button", name="POST /predict Score one row", exact=True)).to_be_visible()
        expect(page.get_by_role("button", name="POST /models/digits/predict Score one row")).to_be_visible()
        shoot(page, "serving-docs")
        page.goto(f"{serving.url}/redoc")
        expect(page.get_by_role("heading", name="Score one row").first).to_be_visible(timeout=30_000)
        shoot(page, "serving-redoc")
    context.close()
    assert refused == []
    assert f"{serving.url}/openapi.json" in requested and f"{serving.url}/docs/assets/swagger-ui-bundle.js" in requested
