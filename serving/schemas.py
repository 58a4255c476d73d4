"""Request and response models. The request model is generated from the dataset spec, so the
API validates exactly what the Pandera schema validates: types, ranges, categories, nullability.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, TypeAdapter
from typing_extensions import NotRequired, TypedDict  # pydantic wants these on Python 3.11

from retrain_platform.datasets import Categorical, DatasetSpec

from .run_outcome import Outcome

# Answered before the handler runs, so FastAPI cannot know them: documented on the routes by hand.
AUTH_ERRORS = {401: {"description": "no bearer token"}, 403: {"description": "wrong token"}}
UNREADABLE_BODY = {400: {"description": "the body cannot be read as JSON text (not UTF-8)"}}
# For the routes that validate their own body (RequestSchemas); FastAPI documents the others.
INVALID_BODY = {422: {"description": "the body is not valid: `detail` lists each error, its `loc` naming the field"}}


def _example_value(feature) -> float | int | str:
    if isinstance(feature, Categorical):
        return feature.categories[0]
    low = feature.min if feature.min is not None else 0
    high = feature.max if feature.max is not None else low + 2
    middle = (low + high) / 2
    return int(middle) if feature.integer else round(middle, 2)


def example_row(spec: DatasetSpec) -> dict:
    return {feature.name: _example_value(feature) for feature in spec.features}


# The prediction log keeps integers as 64-bit ones (orjson, SQLite and PostgreSQL JSON alike): a
# bigger one is refused here, naming its field, rather than failing the request or its log later.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _field(feature) -> tuple[object, object]:
    if isinstance(feature, Categorical):
        kind: object = Literal[feature.categories]  # type: ignore[valid-type]
        constraints: dict = {}
    elif feature.integer:
        kind = int
        constraints = {"ge": INT64_MIN if feature.min is None else feature.min,
                       "le": INT64_MAX if feature.max is None else feature.max}  # fmt: skip
    else:
        kind = float
        constraints = {"ge": feature.min, "le": feature.max, "allow_inf_nan": False}
    description = feature.description or None
    if feature.nullable:
        # Missing and null both mean "not measured"; the model has a branch for it.
        return Optional[kind], Field(None, description=description, **constraints)  # noqa: UP045
    return kind, Field(..., description=description, **constraints)


# Logged as ISO text: the prediction log keeps features as JSON.
IsoDatetime = Annotated[datetime, AfterValidator(lambda value: value.isoformat())]


def _context_fields(spec: DatasetSpec) -> dict:
    """The spec's id and event time: optional, never model inputs, but logged with the prediction
    so that labelled predictions can become training rows and monitoring can follow event time."""
    fields = {
        spec.id_column: (
            Optional[int],  # noqa: UP045
            Field(None, ge=INT64_MIN, le=INT64_MAX, description="your id for this row; logged, not a feature"),
        )
    }
    if spec.timestamp:
        fields[spec.timestamp] = (
            Optional[IsoDatetime],  # noqa: UP045
            Field(None, description="when the event happens (ISO 8601); logged, not a feature"),
        )
    return fields


def _class_name(spec: DatasetSpec) -> str:
    return "".join(part.capitalize() for part in spec.name.split("_"))


@dataclass(frozen=True)
class RequestSchemas:
    """How a request body becomes rows: validated from the raw JSON bytes in one pass (pydantic's
    Rust parser), straight into plain dicts. No model instance per row and no second parse: for a
    batch of 1,000 rows this is the difference between about 7 ms and 20 ms."""

    row: TypeAdapter  # one row, the body of POST /predict
    batch: TypeAdapter  # {"rows": [...]}, the body of POST /predict/batch
    row_name: str
    batch_name: str

    def components(self) -> dict[str, dict]:
        """Their JSON schemas, for the OpenAPI document's components."""
        template = "#/components/schemas/{model}"
        batch = self.batch.json_schema(ref_template=template)
        return {**batch.pop("$defs", {}), self.batch_name: batch}

    @staticmethod
    def reference(name: str) -> dict:
        """`openapi_extra` for a route whose JSON body is the component `name`."""
        schema = {"$ref": f"#/components/schemas/{name}"}
        return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def request_schemas(spec: DatasetSpec, max_rows: int) -> RequestSchemas:
    """Unknown fields, wrong types, out-of-range values and unknown categories are all rejected
    (422), naming the field. Strict, as the Pandera schema is: a boolean or a string ("800") is not
    a number and a date-time is an ISO string, checked by pydantic's own parser at no extra cost."""
    fields = {feature.name: _field(feature) for feature in spec.features} | _context_fields(spec)
    row_name, batch_name = f"{_class_name(spec)}Features", f"{_class_name(spec)}Batch"
    row = TypedDict(row_name, {
        name: Annotated[kind, info] if info.is_required() else NotRequired[Annotated[kind, info]]
        for name, (kind, info) in fields.items()
    })  # fmt: skip
    row.__doc__ = f"One row of features for dataset {spec.name!r}: {spec.description}"
    row.__pydantic_config__ = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [example_row(spec)]})
    rows = Annotated[list[row], Field(min_length=1, max_length=max_rows, description=f"1 to {max_rows} rows")]
    batch = TypedDict(batch_name, {"rows": rows})
    batch.__pydantic_config__ = ConfigDict(extra="forbid", strict=True)
    return RequestSchemas(TypeAdapter(row), TypeAdapter(batch), row_name, batch_name)


class Explanation(BaseModel):
    """Why the row scored what it did, in log-odds: `bias` plus every contribution is the model's raw
    score, and the probability is its sigmoid. LightGBM: its own tree SHAP values; the logistic
    model: each feature's term."""

    bias: float
    contributions: dict[str, float] = Field(description="each feature's part in the log-odds")


class Prediction(BaseModel):
    prediction_id: str = Field(description="quote it in POST /feedback when the true outcome is known")
    model_version: str
    probability: float = Field(description="probability of the positive class")
    label: int = Field(description="1 when probability >= threshold")
    threshold: float
    explanation: Explanation | None = Field(None, description="with `explain=true` only")


class RowPrediction(BaseModel):
    prediction_id: str
    probability: float
    label: int
    explanation: Explanation | None = Field(None, description="with `explain=true` only")


class BatchPrediction(BaseModel):
    model_version: str
    threshold: float
    count: int
    predictions: list[RowPrediction]


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prediction_id: str = Field(min_length=1, max_length=64)
    # Not Literal[0, 1], which takes JSON true, false and 1.0 for labels.
    label: StrictInt = Field(ge=0, le=1, description="the true outcome: 0 or 1",
                             json_schema_extra={"enum": [0, 1]})


class FeedbackAck(BaseModel):
    prediction_id: str
    label: int
    labelled_at: datetime
    model_version: str = Field(description="the version that made the prediction")


class StoreHealth(BaseModel):
    pending: int = Field(description="predictions queued for the log in this worker, not stored yet")
    written: int = Field(description="predictions this worker stored")
    failed_writes: int = Field(description="batches whose write failed (their rows stay queued and are retried)")
    last_error: str | None


class Health(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    model_loaded: bool
    model_name: str
    model_version: str | None
    challenger_version: str | None
    loaded_at: datetime | None
    poll_seconds: float
    last_registry_check_at: datetime | None
    last_registry_success_at: datetime | None
    registry_error: str | None
    store: StoreHealth


class ModelInfo(BaseModel):
    model_name: str
    model_uri: str
    version: str
    loaded_at: datetime
    decision_threshold: float
    data_window: str | None
    promoted_at: str | None
    dagster_run_id: str | None
    mlflow_run_id: str | None
    metrics: dict[str, float]
    tags: dict[str, str]
    challenger_version: str | None


class Reloaded(BaseModel):
    changed: bool
    model_version: str | None
    challenger_version: str | None
    registry_error: str | None


class RetrainLaunched(BaseModel):
    run_id: str
    status: str
    dagster_run_url: str


class RetrainStatus(BaseModel):
    run_id: str
    status: str = Field(description="Dagster's run status: QUEUED, STARTED, SUCCESS, FAILURE, CANCELED, ...")
    dagster_run_url: str
    outcome: Outcome = Field(
        description="what the run did: `promoted` a new production model, had its candidate `rejected` by the "
        "gates, `failed` (at `failed_step`), was `canceled`, or `finished` without a promotion; `running` until then"
    )
    detail: str = Field(description="the outcome in a sentence, for people")
    failed_gates: list[str] = Field(description="the gates the candidate failed, when rejected")
    promoted_version: str | None = Field(description="the version now in production, when promoted")
    failed_step: str | None = Field(description="the first step that failed, if one did")


class HealthDay(BaseModel):
    day: date = Field(description="the traffic's day (UTC): of its newest event time when logged, else of the check")
    checked_at: datetime = Field(description="when the day's newest check ran")
    model_version: str = Field(description="the version serving at that check")
    level: str = Field(description="the check's drift level: ok, warn, flag or alert")
    realised_auc: float | None = Field(description="on the newest labelled predictions; null until labels arrive")
    estimated_auc: float | None = Field(description="from calibrated scores, before any label")
    estimated_auc_low: float | None
    estimated_auc_high: float | None
    promised_auc: float | None = Field(description="the serving version's AUC on its own holdout")


class HealthAlarm(BaseModel):
    checked_at: datetime
    event_time: datetime | None = Field(description="the newest event time in the checked window, if logged")
    model_version: str
    level: Literal["flag", "alert"]
    drifted_columns: list[str]
    drifted_importance: float | None = Field(description="share of the model's importance that drifted, 0 to 1")
    episode_checks: int = Field(description="checks of this version that flagged drift in this episode, this one included")
    episode_last: datetime = Field(description="when the episode's newest flagged check's traffic was")
    episode_columns: list[str] = Field(description="every column drifted during the episode, most often first")


class HealthDecision(BaseModel):
    decision_date: datetime
    trigger: str = Field(description="drift, performance, schedule or manual")
    retrain: bool = Field(description="whether a retrain was run for it, as acted on (the policy may refuse one)")
    reason: str
    status: str | None = Field(description="the archive's outcome status: retrain, no-retrain or duplicate")
    model_version: str | None


class ModelHealthSummary(BaseModel):
    model_name: str
    model_version: str | None = Field(description="the version serving now, null before the first")
    monitoring_log: Literal["ok", "empty", "unreadable"] = Field(
        description="`empty`: no drift check recorded yet; `unreadable`: the store did not answer (see serving's log)"
    )
    monitoring_error: str | None = Field(description="why the log could not be read, when unreadable")
    checks_read: int = Field(description="how many of the newest checks the summary was made from (capped)")
    days: list[HealthDay] = Field(description="newest day first: each day's newest check")
    alarms: list[HealthAlarm] = Field(description="newest first: one per episode of drift (a check at level flag or alert after a quiet spell, or an escalation to alert)")
    decisions: list[HealthDecision] = Field(description="newest first, from the decisions archive")
    decisions_unreadable: int = Field(description="archived files among the newest that could not be read")
