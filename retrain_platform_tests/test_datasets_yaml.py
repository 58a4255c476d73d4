"""Datasets as YAML files: the shipped ones read as the Python specs they replaced, a bad file is an
error naming the file, the line and the field, `spec infer` drafts a spec that loads back, and a
dataset added as a YAML file alone trains through the real graph."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from retrain_platform.cli import main as cli
from retrain_platform.core.gates import GateConfig
from retrain_platform.core.validation import check_schema
from retrain_platform.datasets import FLIGHTS, SPECS, Categorical, Numeric, SpecError, get_spec, load_spec
from retrain_platform.datasets.catalog import FOLDER_VARIABLE, SHIPPED_FOLDER
from retrain_platform.datasets.infer import InferError, infer_spec
from retrain_platform.datasets.spec_file import DataSource
from retrain_platform.definitions import build_definitions
from retrain_platform.registry import ModelRegistry

from .conftest import make_settings, run_job

FLIGHTS_FILE = SHIPPED_FOLDER.parent / "data" / "flights_weather_2013.parquet"
WEATHER = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib")
MEASURES = ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity", "concave_points",
            "symmetry", "fractal_dimension")  # fmt: skip


# -- the shipped datasets --------------------------------------------------------------------------
def test_the_shipped_folder_holds_flights_breast_cancer_and_digits():
    assert sorted(SPECS) == ["breast_cancer", "digits", "flights"]
    assert get_spec("flights") == FLIGHTS


def test_flights_reads_as_its_python_spec_did():
    spec = get_spec("flights")
    assert spec.feature_names == ["day_of_week", "dep_hour", "arr_hour", "carrier", "origin", "dest", "distance", *WEATHER]
    assert (spec.target, spec.id_column, spec.timestamp) == ("arrived_late", "flight_id", "scheduled_departure")
    assert (spec.auc_floor, spec.recall_floor, spec.min_rows) == (0.62, 0.35, 1_000)
    assert spec.feature("day_of_week") == Numeric("day_of_week", 0, 6, integer=True, description="0 = Monday")
    assert spec.feature("pressure") == Numeric("pressure", 900, 1_100, nullable=True,
                                               description="sea-level pressure, millibars")  # fmt: skip
    assert all(spec.feature(name).nullable for name in WEATHER)
    # Category codes are positions in these tuples: they must be today's, in today's order.
    assert spec.feature("carrier") == Categorical("carrier", ("9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL", "HA",
                                                  "MQ", "OO", "UA", "US", "VX", "WN", "YV"), description="two-letter carrier code")  # fmt: skip
    assert spec.feature("origin").categories == ("EWR", "JFK", "LGA")
    rows = spec.load()
    assert spec.feature("dest").categories == tuple(sorted(rows["dest"].unique())) and len(rows) > 300_000
    pd.testing.assert_frame_equal(rows, pd.read_parquet(FLIGHTS_FILE))  # the vendored file, unchanged


def test_breast_cancer_reads_as_its_python_spec_did():
    spec = get_spec("breast_cancer")
    names = [f"{stat}_{measure}" for stat in ("mean", "error", "worst") for measure in MEASURES]
    assert spec.features == tuple(Numeric(name, min=0) for name in names)
    assert (spec.target, spec.id_column, spec.timestamp) == ("malignant", "sample_id", None)
    assert (spec.auc_floor, spec.recall_floor, spec.min_rows) == (0.9, 0.8, 100)
    bunch = load_breast_cancer(as_frame=True)  # what the Python spec's load() read
    rows = spec.load()
    assert list(rows.columns) == ["sample_id", *names, "malignant"]
    assert rows["sample_id"].tolist() == list(range(569))
    assert (rows[names].to_numpy() == bunch.data.to_numpy()).all()
    assert rows["malignant"].tolist() == (bunch.target == 0).astype(int).tolist()  # scikit-learn's 0 is malignant
    assert check_schema(rows, spec).passed


def test_an_unknown_dataset_names_the_known_ones():
    with pytest.raises(KeyError, match=r"unknown dataset 'nope'; known: \['breast_cancer', 'digits', 'flights'\]"):
        get_spec("nope")


# -- a folder of one's own ------------------------------------------------------------------------
LOANS = """\
name: loans
description: made up for the tests
data:
  path: {path}
id:
  column: loan_id
  generate: true
time: applied_at
target:
  column: outcome
  positive: bad
min_rows: 2
gates:
  cooldown_days: 1
features:
  amount: {{type: number, min: 0, max: 1000}}
  grade: {{type: category, categories: ["A", "B", "3"], nullable: true}}
"""


def write_loans(folder: Path, path: str = "loans-*.csv") -> Path:
    (folder / "loans-1.csv").write_text("applied_at,amount,grade,outcome,note\n2024-01-02,100,A,good,x\n2024-01-01,250.5,B,bad,y\n")
    (folder / "loans-2.csv").write_text("applied_at,amount,grade,outcome,note\n2024-01-03,80,3,bad,z\n2024-01-04,90,,,w\n")
    spec_path = folder / "loans.yaml"
    spec_path.write_text(LOANS.format(path=path))
    return spec_path


def test_a_yaml_file_is_a_dataset_found_by_being_in_the_folder(tmp_path, monkeypatch):
    write_loans(tmp_path)
    monkeypatch.setenv(FOLDER_VARIABLE, str(tmp_path))
    assert list(SPECS) == ["loans"]
    spec = get_spec("loans")
    assert spec.gates == GateConfig(cooldown_days=1) and spec.min_rows == 2
    rows = spec.load()
    # A glob reads every file in name order; the row without an outcome is left out; the target is 0/1.
    assert list(rows.columns) == ["loan_id", "applied_at", "amount", "grade", "outcome"]  # `note` is not in the spec
    assert rows["outcome"].tolist() == [0, 1, 1] and rows["loan_id"].tolist() == [0, 1, 2]
    assert rows["grade"].tolist() == ["A", "B", "3"]  # the code 3 read as a number is the category "3"
    assert pd.api.types.is_datetime64_any_dtype(rows["applied_at"])
    assert check_schema(rows, spec).passed
    monkeypatch.delenv(FOLDER_VARIABLE)
    assert "loans" not in SPECS and "flights" in SPECS  # back to the shipped folder


def test_a_data_path_may_be_absolute_and_a_loader_a_python_function(tmp_path):
    spec = load_spec(write_loans(tmp_path, path=str(tmp_path / "loans-1.csv")))
    assert len(spec.load()) == 2
    custom = LOANS.format(path="unused").replace("  path: unused", f"  python: {__name__}:loans_frame")
    (tmp_path / "loans.yaml").write_text(custom)
    assert load_spec(tmp_path / "loans.yaml").load()["amount"].tolist() == [1.0, 2.0]


def loans_frame() -> pd.DataFrame:
    """A custom loader, as a dataset with its own Python reading code would name it."""
    return pd.DataFrame({"applied_at": ["2024-01-01", "2024-01-02"], "amount": [1.0, 2.0], "grade": ["A", None],
                         "outcome": ["bad", "good"]})  # fmt: skip


# -- errors name the file, the line and the field ----------------------------------------------------
BAD_FILES = {
    "a string for a number": ("amount: {type: number, min: 0, max: 1000}", "amount: {type: number, min: \"0\"}",
                              16, "features.amount.min", "must be a number, not '0'"),
    "a typo in a key": ("amount: {type: number, min: 0, max: 1000}", "amount: {type: number, nullabel: true}",
                        16, "features.amount.nullabel", "Extra inputs are not permitted"),
    "an unknown type": ("amount: {type: number, min: 0, max: 1000}", "amount: {type: float}", 16, "features.amount",
                        "'number', 'integer', 'category'"),
    "min above max": ("amount: {type: number, min: 0, max: 1000}", "amount: {type: number, min: 5, max: 1}",
                      16, "features.amount", "min 5 is above max 1"),
    "a boolean category": ('categories: ["A", "B", "3"]', "categories: [A, NO]", 17, "features.grade.categories.1",
                           "quote it"),
    "a missing target": ("target:\n  column: outcome\n  positive: bad\n", "", 1, "target", "Field required"),
    "a typo in a gate": ("  cooldown_days: 1", "  cooldown_day: 1", 14, "gates.cooldown_day",
                         "Extra inputs are not permitted"),
    "a name that is not the file's": ("name: loans", "name: credit", 1, "name", "must be the file's name"),
    "a missing data file": ("path: loans-*.csv", "path: nowhere.csv", 4, "data.path", "no data file matches"),
    "a feature that is the target": ("  grade: {type", "  outcome: {type: number}\n  grade: {type", 15, "features",
                                     "'outcome' is the target column and a feature"),
    "not YAML": ("  column: loan_id", "  column: [loan_id", 7, "", "not valid YAML"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_a_bad_spec_is_an_error_naming_file_line_and_field(tmp_path, case):
    old, new, line, field, message = BAD_FILES[case]
    spec_path = write_loans(tmp_path)
    text = spec_path.read_text()
    assert old in text
    spec_path.write_text(text.replace(old, new))
    with pytest.raises(SpecError) as raised:
        load_spec(spec_path)
    first = str(raised.value).splitlines()[0]
    assert first.startswith(f"{spec_path}:{line}: {field}{': ' if field else ''}"), first
    assert message in first


def test_every_problem_of_a_file_is_named_at_once(tmp_path):
    spec_path = write_loans(tmp_path)
    spec_path.write_text(spec_path.read_text().replace("min_rows: 2", "min_rows: many").replace("max: 1000", "max: x"))
    with pytest.raises(SpecError) as raised:
        load_spec(spec_path)
    assert [line.split(": ")[1] for line in str(raised.value).splitlines()] == ["features.amount.max", "min_rows"]


# -- spec infer -------------------------------------------------------------------------------------
def test_infer_drafts_a_spec_that_loads_back(tmp_path, capsys):
    write_loans(tmp_path)
    assert cli(["spec", "infer", str(tmp_path / "loans-1.csv"), "--target", "outcome", "--positive", "bad",
                "--time", "applied_at", "--id", "loan_id", "--name", "drafted"]) == 0  # fmt: skip
    draft = tmp_path / "drafted.yaml"
    draft.write_text(capsys.readouterr().out)
    spec = load_spec(draft)
    assert spec.timestamp == "applied_at" and spec.id_column == "loan_id" and spec.target == "outcome"
    assert spec.feature("amount") == Numeric("amount", 80, 270)  # 100 to 250.5, widened by a tenth of the span
    assert spec.feature("grade") == Categorical("grade", ("A", "B"))
    assert spec.feature("note") == Categorical("note", ("x", "y"))
    rows = spec.load()
    assert rows["outcome"].tolist() == [0, 1] and check_schema(rows, spec).passed


def test_infer_says_what_it_cannot_guess(tmp_path, capsys):
    write_loans(tmp_path)
    data = str(tmp_path / "loans-1.csv")
    assert cli(["spec", "infer", data, "--target", "outcome", "--name", "x"]) == 2
    assert "Give --positive; values seen: ['bad', 'good']" in capsys.readouterr().err
    assert cli(["spec", "infer", data, "--target", "outcome", "--positive", "ugly", "--name", "x"]) == 2
    assert "--positive 'ugly' is not a value of 'outcome'" in capsys.readouterr().err
    with pytest.raises(InferError, match="no time column 'when'"):
        infer_spec(DataSource(path=data), tmp_path, "x", "outcome", "bad", time="when")


# -- a third public dataset, added as a YAML file alone ------------------------------------------------
def test_digits_is_the_infer_draft_edited(tmp_path, capsys):
    assert cli(["spec", "infer", "data/digits.csv.gz", "--package", "sklearn.datasets", "--no-header",
                "--target", "column_64", "--positive", "8", "--name", "digits"]) == 0  # fmt: skip
    (tmp_path / "digits.yaml").write_text(capsys.readouterr().out)
    draft, shipped = load_spec(tmp_path / "digits.yaml"), get_spec("digits")
    assert draft.feature_names == shipped.feature_names == [f"column_{i}" for i in range(64)]
    assert (draft.target, draft.id_column, draft.timestamp) == (shipped.target, shipped.id_column, None)
    # The edits: each block counts 0 to 16 inked pixels, whatever the sample showed, and real floors.
    assert {(f.min, f.max, f.integer) for f in shipped.features} == {(0, 16, True)}
    assert (shipped.auc_floor, shipped.recall_floor) == (0.9, 0.6)
    rows = shipped.load()
    assert len(rows) == 1_797 and rows[shipped.target].sum() == 174  # the 8s
    assert check_schema(rows, shipped).passed


def test_digits_trains_through_the_graph(tmp_path, instance, monkeypatch):
    # Its own folder holding its YAML file alone: nothing else makes it a dataset.
    folder = tmp_path / "datasets"
    folder.mkdir()
    shutil.copy(SHIPPED_FOLDER / "digits.yaml", folder)
    monkeypatch.setenv(FOLDER_VARIABLE, str(folder))
    settings = make_settings(tmp_path, dataset="digits")
    spec = get_spec("digits")
    result = run_job(build_definitions(settings), instance, candidate_model={"max_rounds": 100},
                     evaluation_report=spec.gates.model_dump())  # fmt: skip
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"schema_valid": True, "enough_rows": True, "window_covered": True, "gates_passed": True}
    registry = ModelRegistry(settings.tracking_uri, "retrain-digits")
    assert registry.production_version() == "1"
    predictor = registry.load_predictor("1")
    rows = spec.load()
    eights, others = rows[rows[spec.target] == 1].head(20), rows[rows[spec.target] == 0].head(20)
    assert predictor.score_rows(eights.to_dict("records")).mean() > predictor.score_rows(others.to_dict("records")).mean()


def test_a_dataset_yaml_can_make_its_retrains_learn_its_prediction_log(tmp_path, monkeypatch):
    from retrain_platform.resources import Dataset, LabelledSource

    text = (SHIPPED_FOLDER / "breast_cancer.yaml").read_text()
    (tmp_path / "breast_cancer.yaml").write_text(text.replace("\ndata:\n", "\ndata:\n  prediction_log: true\n", 1))
    shutil.copy(SHIPPED_FOLDER / "digits.yaml", tmp_path)
    monkeypatch.setenv(FOLDER_VARIABLE, str(tmp_path))
    assert get_spec("breast_cancer").learns_from_log and not get_spec("digits").learns_from_log
    # A deployment whose retrains do not learn the log (RETRAIN_TRAIN_ON_PREDICTION_LOG off):
    source = LabelledSource(prediction_log_url="sqlite:////srv/predictions.db", history_path="/srv/flights.parquet")
    assert source.of(Dataset("breast_cancer")).store_url == "sqlite:////srv/predictions.db"
    scoped = source.of(Dataset("breast_cancer", "breast_cancer"))  # not the default: its own log and data
    assert scoped.store_url == scoped.prediction_log_url == "sqlite:////srv/datasets/breast_cancer/predictions.db"
    assert scoped.history_path == ""
    assert source.of(Dataset("digits", "digits")).store_url == ""


def test_a_dataset_whose_only_source_is_its_prediction_log(tmp_path, monkeypatch):
    from datetime import UTC, datetime

    from retrain_platform.resources import Dataset, LabelledSource
    from retrain_platform.store import PredictionStore

    (tmp_path / "loans.yaml").write_text(LOANS.format(path="unused").replace("  path: unused", "  prediction_log: true"))
    monkeypatch.setenv(FOLDER_VARIABLE, str(tmp_path))
    spec = get_spec("loans")
    assert spec.learns_from_log and spec.load().empty and list(spec.load().columns) == spec.columns
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    store = PredictionStore(url, log_dir=tmp_path / "log")
    try:
        for number, (amount, grade, label) in enumerate([(100.0, "A", 0), (250.5, "B", 1), (80.0, None, 1)]):
            store.record({"prediction_id": f"p{number}", "created_at": datetime(2024, 1, 2 + number, tzinfo=UTC),
                          "model_version": "1", "score": 0.5, "predicted_label": 1,
                          "features": {"amount": amount, "grade": grade, "applied_at": f"2024-01-0{2 + number}T09:00:00"}})  # fmt: skip
            store.add_label(f"p{number}", label)
    finally:
        store.close()
    rows = LabelledSource(prediction_log_url=url).of(Dataset("loans")).read(spec, window_days=0)
    assert sorted(rows["amount"]) == [80.0, 100.0, 250.5] and sorted(rows["outcome"]) == [0, 1, 1]
    assert rows["amount"].dtype == "float64"  # the log's rows as they are, not objects from an empty file's frame
    # Neither a file nor the log: an error naming the field.
    (tmp_path / "loans.yaml").write_text(LOANS.format(path="unused").replace("  path: unused\n", ""))
    with pytest.raises(SpecError, match="data"):
        load_spec(tmp_path / "loans.yaml")
