"""GET /retrain (a page with one button), POST /retrain and GET /retrain/status/{run_id}: retraining
through Dagster for people who don't use the Dagster UI. The last two want the admin token."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from retrain_platform.names import MODEL_TAG, TRIGGER_TAG

from ..auth import ADMIN, ADMIN_TOKEN_ENV, configured_tokens
from ..context import Serving
from ..retrain_launcher import DagsterClient, DagsterError, DagsterUnreachable
from ..retrain_page import render_retrain_page
from ..schemas import AUTH_ERRORS, RetrainLaunched, RetrainStatus

TAGS = ["retraining"]


def add_retrain_routes(router: APIRouter, serving: Serving) -> None:
    settings, model_name = serving.settings, serving.spec.model_name
    dagster = DagsterClient(settings.dagster_url, settings.dagster_location, settings.dagster_repository)
    job = settings.dagster_retrain_job

    @router.get("/retrain", response_class=HTMLResponse, tags=TAGS, summary="A page with one Retrain button")
    def retrain_page(request: Request) -> HTMLResponse:
        current = serving.holder.served
        page = render_retrain_page(
            model_name,
            current.version if current else None,
            job,
            token_env=None if configured_tokens(ADMIN_TOKEN_ENV) else ADMIN_TOKEN_ENV,
            launch_url=request.url_for("retrain").path,
            status_url=request.url_for("retrain_status", run_id="RUN_ID").path,
        )
        return HTMLResponse(page)

    @router.post(
        "/retrain", response_model=RetrainLaunched, status_code=202, tags=TAGS, dependencies=[ADMIN],
        summary=f"Launch the Dagster job `{job}`",
        description="Launches the job through Dagster's GraphQL API and returns at once with the run id and "
        "its Dagster UI link; follow it with GET /retrain/status/{run_id}. The job promotes the new model "
        "only if it passes every gate, and serving picks the promotion up at its next registry poll.",
        responses={**AUTH_ERRORS, 502: {"description": "Dagster refused the launch"},
                   503: {"description": "Dagster unreachable"}},
    )  # fmt: skip
    async def retrain() -> RetrainLaunched:
        try:
            run_id, status = await dagster.launch(job, {TRIGGER_TAG: "serving", MODEL_TAG: model_name})
        except DagsterUnreachable as err:
            raise HTTPException(503, str(err)) from err
        except DagsterError as err:
            raise HTTPException(502, f"Dagster did not launch {job!r}: {err}") from err
        return RetrainLaunched(run_id=run_id, status=status, dagster_run_url=dagster.run_url(run_id))

    @router.get(
        "/retrain/status/{run_id}", response_model=RetrainStatus, tags=TAGS, dependencies=[ADMIN],
        summary="Status of a Dagster run, and once it has finished, what it did",
        description="While the run goes on, `outcome` is `running`; once it has finished, its events say "
        "whether it promoted a new model (`promoted_version`), had the candidate rejected by the gates "
        "(`failed_gates`), or failed (`failed_step`), and `detail` says so in a sentence.",
        responses={**AUTH_ERRORS, 404: {"description": "no such run"},
                   502: {"description": "Dagster answered with an error"}, 503: {"description": "Dagster unreachable"}},
    )  # fmt: skip
    async def retrain_status(run_id: str) -> RetrainStatus:
        try:
            status, outcome = await dagster.run(run_id)
        except DagsterUnreachable as err:
            raise HTTPException(503, str(err)) from err
        except DagsterError as err:
            raise HTTPException(404 if "RunNotFound" in str(err) else 502, str(err)) from err
        return RetrainStatus(run_id=run_id, status=status, dagster_run_url=dagster.run_url(run_id), **asdict(outcome))
