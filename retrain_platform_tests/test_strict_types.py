"""Serving's request types are the Pandera schema's: a boolean or a string is not a number, a
date-time is a string, a label is 0 or 1. Each wrong type is a 422 naming the field.

The app runs with an empty registry: validation comes before scoring, so a valid body is a 503
(no model yet) and an invalid one a 422, which is what tells the two apart here.
"""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from retrain_platform.datasets import FLIGHTS
from retrain_platform.settings import Settings
from serving.app import create_app
from serving.schemas import example_row

TOKEN = "strict-types-token"
ROW = {**example_row(FLIGHTS), "flight_id": 7, "scheduled_departure": "2013-03-01T08:00:00"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    home = tmp_path_factory.mktemp("strict")
    settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
                        prediction_store_url=f"sqlite:///{home / 'predictions.db'}")  # fmt: skip
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RETRAIN_ADMIN_TOKEN", TOKEN)
        with TestClient(create_app(settings)) as client:
            yield client


def predict(client: TestClient, **changes):
    return client.post("/predict", json={**ROW, **changes})


def only_error(response) -> dict:
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert len(errors) == 1, errors
    return errors[0]


def test_a_valid_row_passes_validation(client):
    assert predict(client).status_code == 503  # validated, then no model to score it
    assert predict(client, distance=800, temp=None).status_code == 503  # an integer is a number too


NOT_NUMBERS = {
    "numeric string": ("distance", "800", "float_type"),
    "padded numeric string": ("distance", " 5 ", "float_type"),
    "true as a number": ("distance", True, "float_type"),
    "false as a nullable number": ("temp", False, "float_type"),
    "true as an integer": ("dep_hour", True, "int_type"),
    "numeric string as an integer": ("dep_hour", "5", "int_type"),
    "string id": ("flight_id", "12", "int_type"),
    "boolean id": ("flight_id", True, "int_type"),
    "number as a date-time": ("scheduled_departure", 1_362_124_800, "datetime_type"),
    "boolean as a date-time": ("scheduled_departure", True, "datetime_type"),
}


@pytest.mark.parametrize("case", NOT_NUMBERS, ids=list(NOT_NUMBERS))
def test_a_wrong_type_is_422_naming_the_field(client, case):
    field, value, error_type = NOT_NUMBERS[case]
    error = only_error(predict(client, **{field: value}))
    assert error["loc"] == ["body", field] and error["type"] == error_type


def test_a_wrong_type_in_a_batch_names_its_row(client):
    rows = [ROW, {**ROW, "wind_speed": "12"}]
    error = only_error(client.post("/predict/batch", json={"rows": rows}))
    assert error["loc"] == ["body", "rows", 1, "wind_speed"] and error["type"] == "float_type"


@pytest.mark.parametrize("label", [True, False, 1.0, "1", 2, -1])
def test_a_label_is_0_or_1(client, label):
    body = {"prediction_id": str(uuid.uuid4()), "label": label}
    error = only_error(client.post("/feedback", json=body, headers={"Authorization": f"Bearer {TOKEN}"}))
    assert error["loc"] == ["body", "label"]


@pytest.mark.parametrize("label", [0, 1])
def test_a_0_or_1_label_passes_validation(client, label):
    body = {"prediction_id": str(uuid.uuid4()), "label": label}
    answer = client.post("/feedback", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 404  # validated, then no such prediction in the log
