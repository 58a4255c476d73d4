"""GET /retrain (a page with one button and the model's health), POST /retrain and
GET /retrain/status/{run_id}: retraining through Dagster for people who don't use the Dagster UI.
The last two want the admin token; GET /retrain/health (the health alone, as JSON) does not."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from retrain_platform.names import MODEL_TAG, TRIGGER_TAG

from ..auth import ADMIN, ADMIN_TOKEN_ENV, configured_tokens
from ..context import Serving
from ..health_summary import read_health
from ..retrain_launcher import DagsterClient, DagsterError, DagsterUnreachable
from ..retrain_page import render_health, render_retrain_page
from ..schemas import AUTH_ERRORS, ModelHealthSummary, RetrainLaunched, RetrainStatus

TAGS = ["retraining"]


def add_retrain_routes(router: APIRouter, serving: Serving, prefix: str = "") -> None:
    """`prefix`: /models/{name} for a dataset's own page; its routes' names carry it for `url_for`."""
    settings, model_name = serving.settings, serving.spec.model_name
    dagster = DagsterClient(settings.dagster_url, settings.dagster_location, settings.dagster_repository)
    job = serving.retrain_job
    names = settings.dataset_names()  # each has its own page under /models/{name}/retrain

    def health() -> ModelHealthSummary:
        current = serving.holder.served
        return read_health(serving.store_url, serving.decisions_dir / "archive", model_name,
                           current.version if current else None, settings.drift_alarm_quiet_days)  # fmt: skip

    # Plain `def` handlers: FastAPI runs them in its threadpool, so the log's query and the archive's
    # file reads never block the event loop that answers predictions.
    @router.get(f"{prefix}/retrain", response_class=HTMLResponse, tags=TAGS, summary="A page with one Retrain button",
                name=f"{prefix}retrain_page")  # fmt: skip
    def retrain_page(request: Request) -> HTMLResponse:
        summary = health()
        page = render_retrain_page(
            model_name,
            summary.model_version,
            job,
            token_env=None if configured_tokens(ADMIN_TOKEN_ENV) else ADMIN_TOKEN_ENV,
            launch_url=request.url_for(f"{prefix}retrain").path,
            status_url=request.url_for(f"{prefix}retrain_status", run_id="RUN_ID").path,
            health=render_health(summary, request.url_for(f"{prefix}retrain_health").path),
            models={name: None if name == serving.spec.name else request.url_for(f"/models/{name}retrain_page").path
                    for name in names},  # fmt: skip
        )
        return HTMLResponse(page)

    @router.get(
        f"{prefix}/retrain/health", response_model=ModelHealthSummary, tags=TAGS, name=f"{prefix}retrain_health",
        summary="The model's health: AUC per day, the last drift alarms, the last retraining decisions",
        description="What the Retrain page shows, as JSON. From the monitoring log: each day's newest drift check "
        "(realised AUC once labels arrive, the estimate from calibrated scores with its interval, the promised AUC "
        "of the version serving then), newest day first, and the newest checks at level flag or alert; from the "
        "decisions archive: the newest decisions with their outcome. Only the newest checks and archive files are "
        "read, so the answer costs the same whatever the history. Read-only and not secret, so it needs no token, "
        "like GET /health. An empty log is `monitoring_log: empty`; one that cannot be read, `unreadable`.",
    )  # fmt: skip
    def retrain_health() -> ModelHealthSummary:
        return health()

    @router.post(
        f"{prefix}/retrain", response_model=RetrainLaunched, status_code=202, tags=TAGS, dependencies=[ADMIN],
        name=f"{prefix}retrain",
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
        f"{prefix}/retrain/status/{{run_id}}", response_model=RetrainStatus, tags=TAGS, dependencies=[ADMIN],
        name=f"{prefix}retrain_status",
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
