"""Retraining from serving: launch the Dagster `retrain` job and follow its run through Dagster's
GraphQL API, plus a one-button page for people who don't use the Dagster UI.

Plain HTTP on purpose: serving never imports Dagster (dagster-graphql's client would pull it in).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable

import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from .schemas import AUTH_ERRORS, RetrainLaunched, RetrainStatus

LAUNCH_RUN = """
mutation LaunchRetrain($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""

RUN_STATUS = """
query RetrainRunStatus($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status }
    ... on Error { message }
  }
}
"""

TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


class DagsterError(RuntimeError):
    """Dagster answered, but not with a run (unknown job, bad config, unknown run id)."""


class DagsterUnreachable(RuntimeError):
    """No answer from the Dagster webserver."""


class DagsterClient:
    def __init__(self, url: str, location: str, repository: str, timeout: float = 15.0):
        self.url = url.rstrip("/")
        self.location = location
        self.repository = repository
        self.timeout = timeout

    def run_url(self, run_id: str) -> str:
        return f"{self.url}/runs/{run_id}"

    async def _query(self, query: str, variables: dict) -> dict:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(f"{self.url}/graphql", json={"query": query, "variables": variables})
        except httpx.HTTPError as err:
            raise DagsterUnreachable(f"Dagster at {self.url} did not answer: {type(err).__name__}: {err}") from err
        if response.status_code != 200:
            raise DagsterError(f"Dagster at {self.url} answered HTTP {response.status_code}: {response.text[:300]}")
        body = response.json()
        if body.get("errors"):
            raise DagsterError("; ".join(error.get("message", str(error)) for error in body["errors"]))
        return body["data"]

    async def launch(self, job: str, tags: dict[str, str]) -> tuple[str, str]:
        """Launch `job` with its default config; returns (run id, status)."""
        params = {
            "selector": {"repositoryLocationName": self.location, "repositoryName": self.repository, "jobName": job},
            "runConfigData": {},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        result = (await self._query(LAUNCH_RUN, {"executionParams": params}))["launchRun"]
        if result["__typename"] == "LaunchRunSuccess":
            return result["run"]["runId"], result["run"]["status"]
        details = result.get("message") or "; ".join(e["message"] for e in result.get("errors", []))
        raise DagsterError(f"{result['__typename']}: {details}")

    async def status(self, run_id: str) -> str:
        result = (await self._query(RUN_STATUS, {"runId": run_id}))["runOrError"]
        if result["__typename"] == "Run":
            return result["status"]
        raise DagsterError(f"{result['__typename']}: {result.get('message', '')}")


RETRAIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Retrain {model_name}</title>
<style>
 body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; color: #222; }}
 input {{ width: 22rem; padding: .4rem; }} button {{ padding: .5rem 1.2rem; font-size: 1rem; }}
 #status {{ margin-top: 1.5rem; white-space: pre-line; }}
</style></head>
<body>
<h1>Retrain {model_name}</h1>
<p>Serving version <b>{model_version}</b>. Retraining runs the Dagster job <code>{job}</code>: ingest,
validate, train, evaluate, and promote only if the new model passes every gate.</p>
<p><label>Admin token <input id="token" type="password" autocomplete="off"></label></p>
<button id="retrain">Retrain</button>
<div id="status"></div>
<script>
const statusBox = document.getElementById("status");
const terminal = new Set({terminal});
const launchUrl = {launch_url}, statusUrl = {status_url};
function show(text, url) {{
  statusBox.textContent = text;
  if (url) {{ const a = document.createElement("a"); a.href = url; a.textContent = " Open in Dagster";
             a.target = "_blank"; statusBox.appendChild(a); }}
}}
async function poll(runId, url, headers) {{
  const r = await fetch(statusUrl.replace("RUN_ID", encodeURIComponent(runId)), {{headers}});
  const body = await r.json();
  if (!r.ok) {{ show("Status unavailable: " + (body.detail || r.status), url); return; }}
  show("Run " + runId + ": " + body.status + ".", url);
  if (!terminal.has(body.status)) setTimeout(() => poll(runId, url, headers), 2000);
}}
document.getElementById("retrain").onclick = async () => {{
  const headers = {{"Authorization": "Bearer " + document.getElementById("token").value}};
  show("Launching...");
  const r = await fetch(launchUrl, {{method: "POST", headers}});
  const body = await r.json();
  if (!r.ok) {{ show("Not launched: " + (body.detail || r.status)); return; }}
  show("Run " + body.run_id + ": " + body.status + ".", body.dagster_run_url);
  poll(body.run_id, body.dagster_run_url, headers);
}};
</script>
</body></html>
"""


def retrain_router(dagster: DagsterClient, job: str, admin, model_name: str, served: Callable) -> APIRouter:
    """GET /retrain (the page), POST /retrain and GET /retrain/status/{run_id}; `admin` guards the last two."""
    router = APIRouter(prefix="/retrain", tags=["retraining"])

    @router.get("", response_class=HTMLResponse, summary="A page with one Retrain button")
    def retrain_page(request: Request) -> HTMLResponse:
        current = served()
        return HTMLResponse(
            RETRAIN_PAGE.format(
                model_name=html.escape(model_name),
                model_version=html.escape(current.version if current else "none yet"),
                job=html.escape(job),
                terminal=json.dumps(sorted(TERMINAL_STATUSES)),
                launch_url=json.dumps(request.url_for("retrain").path),
                status_url=json.dumps(request.url_for("retrain_status", run_id="RUN_ID").path),
            )
        )

    @router.post(
        "", response_model=RetrainLaunched, status_code=202, dependencies=[admin],
        summary=f"Launch the Dagster job `{job}`",
        description="Launches the job through Dagster's GraphQL API and returns at once with the run id and "
        "its Dagster UI link; follow it with GET /retrain/status/{run_id}. The job promotes the new model "
        "only if it passes every gate, and serving picks the promotion up at its next registry poll.",
        responses={**AUTH_ERRORS, 502: {"description": "Dagster refused the launch"},
                   503: {"description": "Dagster unreachable"}},
    )  # fmt: skip
    async def retrain() -> RetrainLaunched:
        try:
            run_id, status = await dagster.launch(
                job, {"retrain_platform/trigger": "serving", "retrain_platform/model": model_name}
            )
        except DagsterUnreachable as err:
            raise HTTPException(503, str(err)) from err
        except DagsterError as err:
            raise HTTPException(502, f"Dagster did not launch {job!r}: {err}") from err
        return RetrainLaunched(run_id=run_id, status=status, dagster_run_url=dagster.run_url(run_id))

    @router.get(
        "/status/{run_id}", response_model=RetrainStatus, dependencies=[admin],
        summary="Status of a Dagster run",
        responses={**AUTH_ERRORS, 404: {"description": "no such run"},
                   502: {"description": "Dagster answered with an error"}, 503: {"description": "Dagster unreachable"}},
    )  # fmt: skip
    async def retrain_status(run_id: str) -> RetrainStatus:
        try:
            status = await dagster.status(run_id)
        except DagsterUnreachable as err:
            raise HTTPException(503, str(err)) from err
        except DagsterError as err:
            raise HTTPException(404 if "RunNotFound" in str(err) else 502, str(err)) from err
        return RetrainStatus(run_id=run_id, status=status, dagster_run_url=dagster.run_url(run_id))

    return router
