"""GET /retrain (a page with one button), POST /retrain and GET /retrain/status/{run_id}: retraining
through Dagster for people who don't use the Dagster UI. The last two want the admin token."""

from __future__ import annotations

import html
import json

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from retrain_platform.names import MODEL_TAG, TRIGGER_TAG

from ..auth import ADMIN
from ..context import Serving
from ..retrain_launcher import TERMINAL_STATUSES, DagsterClient, DagsterError, DagsterUnreachable
from ..retrain_page import RETRAIN_PAGE
from ..schemas import AUTH_ERRORS, RetrainLaunched, RetrainStatus

TAGS = ["retraining"]


def add_retrain_routes(router: APIRouter, serving: Serving) -> None:
    settings, model_name = serving.settings, serving.spec.model_name
    dagster = DagsterClient(settings.dagster_url, settings.dagster_location, settings.dagster_repository)
    job = settings.dagster_retrain_job

    @router.get("/retrain", response_class=HTMLResponse, tags=TAGS, summary="A page with one Retrain button")
    def retrain_page(request: Request) -> HTMLResponse:
        current = serving.holder.served
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
