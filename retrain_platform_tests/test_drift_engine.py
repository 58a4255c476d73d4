"""The fast drift engine against Evidently 0.7's DataDriftPreset, on real flights data.

Reference: a January sample. Windows: a disjoint January sample (no seasonal shift) and a July
sample (summer weather, summer schedule). Two sizes put every column in each of Evidently's regimes:
800 rows -> K-S / chi-square / Z-test, 3,000 rows -> Wasserstein / Jensen-Shannon (the cut-off is
1,000 non-null reference rows, per column, so sparse `wind_gust` stays on K-S at 3,000).

Three columns are derived from real ones only to reach the branches flights' own features never hit:
`rain` (binary categorical -> Z-test), `is_weekend` (binary numeric -> Z-test) and `visib_band`
(numeric with 4 values -> chi-square small, Jensen-Shannon large).
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from retrain_platform.core import drift
from retrain_platform.core.drift import ProxyMetrics, ReferenceProfile, choose_method
from retrain_platform.core.drift_report import column_verdicts, run_evidently
from retrain_platform.datasets.flights import FLIGHTS

NUMERIC = [*FLIGHTS.numeric_features, "is_weekend", "visib_band"]
CATEGORICAL = [*FLIGHTS.categorical_features, "rain"]
FEATURES = NUMERIC + CATEGORICAL


@pytest.fixture(scope="module")
def months() -> dict[int, pd.DataFrame]:
    df = FLIGHTS.load()
    df["rain"] = np.where(df["precip"] > 0, "yes", "no")
    df["is_weekend"] = (df["day_of_week"] >= 5).astype(int)
    df["visib_band"] = np.floor(df["visib"].clip(upper=9.99) / 2.5)  # 0..3, NaN stays NaN
    month = df[FLIGHTS.timestamp].dt.month
    return {m: df.loc[month == m, FEATURES].reset_index(drop=True) for m in (1, 7)}


def evidently_drift(
    reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str] = NUMERIC, categorical: list[str] = CATEGORICAL
) -> dict[str, tuple[float, str, float, bool]]:
    """column -> (score, method, threshold, drifted) as Evidently reports them."""
    return column_verdicts(run_evidently(reference, current, numeric, categorical))


# Evidently's own chi-square divides by a zero expected count for a value unseen in the reference.
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
@pytest.mark.parametrize(
    ("rows", "expected_methods"),
    [
        (800, {"K-S p_value", "chi-square p_value", "Z-test p_value"}),
        (3_000, {"Wasserstein distance (normed)", "Jensen-Shannon distance", "K-S p_value"}),
    ],
)
def test_verdicts_methods_and_scores_match_evidently(months, rows, expected_methods):
    january = months[1].sample(2 * rows, random_state=rows)
    reference, unshifted = january.iloc[:rows], january.iloc[rows:]
    summer = months[7].sample(rows, random_state=rows)
    profile = ReferenceProfile.build(reference, NUMERIC, CATEGORICAL)

    results = {}
    for name, window in (("january", unshifted), ("july", summer)):
        result = profile.compare(window, drift_share=0.5)
        expected = evidently_drift(reference, window)
        for column in FEATURES:
            ours = result.by_column()[column]
            score, method, threshold, drifted = expected[column]
            assert (ours.method, ours.threshold) == (method, threshold), (name, column)
            assert ours.drifted == drifted, (name, column, ours, expected[column])
            # Same scipy routines on the same counts: only summation order differs (~1e-16).
            assert math.isclose(ours.score, score, rel_tol=1e-9, abs_tol=1e-12), (name, column, ours.score, score)
        expected_share = sum(e[3] for e in expected.values()) / len(FEATURES)
        assert result.share_drifted == pytest.approx(expected_share)
        results[name] = result

    assert {c.method for c in results["january"].columns} == expected_methods
    # The test has teeth: summer really drifts, another January sample mostly does not.
    assert results["july"].dataset_drift and results["july"].n_drifted >= 8
    assert not results["january"].dataset_drift and results["january"].n_drifted <= 4


def odd_columns(rows: int, shifted: bool, rng: np.random.Generator) -> pd.DataFrame:
    """What real frames carry now and then: ±inf, None, unused categories, nullable ints, constants."""
    x = rng.normal(1.0 if shifted else 0.0, 1.0, rows)
    x[:5], x[5:10] = np.inf, np.nan  # 1,010 rows leave 1,000 finite: K-S, not Wasserstein
    levels = rng.choice(["a", "b", None], rows, p=[0.4, 0.3, 0.3] if shifted else [0.6, 0.3, 0.1])
    return pd.DataFrame({
        "x": x,
        "constant": np.ones(rows),
        "binary": rng.integers(0, 2, rows).astype(float) if shifted else np.zeros(rows),
        "nullable_int": pd.array(rng.integers(0, 4, rows), dtype="Int64"),
        "level": pd.Categorical(levels, categories=["a", "b", "never_seen"]),
        "flag": np.where(rng.random(rows) < (0.6 if shifted else 0.5), "y", "n"),
        "code": rng.integers(0, 4 if shifted else 3, rows),  # a value the reference never had
    })


# Evidently's own column statistics subtract ±inf, and its chi-square divides by zero.
@pytest.mark.filterwarnings("ignore:invalid value encountered in subtract:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
@pytest.mark.parametrize("reference_rows", [1_000, 1_010])
def test_odd_columns_match_evidently(reference_rows):
    rng = np.random.default_rng(reference_rows)
    numeric, categorical = ["x", "constant", "binary", "nullable_int"], ["level", "flag", "code"]
    reference = odd_columns(reference_rows, False, rng)
    profile = ReferenceProfile.build(reference, numeric, categorical)
    for window in (odd_columns(700, False, rng), odd_columns(700, True, rng)):
        ours = profile.compare(window).by_column()
        for column, (score, method, _, drifted) in evidently_drift(reference, window, numeric, categorical).items():
            assert (ours[column].method, ours[column].drifted) == (method, drifted), column
            assert math.isclose(ours[column].score, score, rel_tol=1e-9, abs_tol=1e-12), column


@pytest.mark.parametrize(
    ("reference_rows", "distinct", "kind", "method"),
    [
        (1_000, 6, "num", drift.KS),
        (1_000, 5, "num", drift.CHI_SQUARE),
        (1_000, 2, "num", drift.Z_TEST),
        (1_000, 3, "cat", drift.CHI_SQUARE),
        (1_000, 2, "cat", drift.Z_TEST),
        (1_001, 6, "num", drift.WASSERSTEIN),
        (1_001, 5, "num", drift.JENSEN_SHANNON),
        (1_001, 50, "cat", drift.JENSEN_SHANNON),
    ],
)
def test_method_choice_boundaries(reference_rows, distinct, kind, method):
    assert choose_method(reference_rows, distinct, kind) is method


def test_verdict_direction_per_method():
    assert drift.KS.drifted(0.05) and not drift.CHI_SQUARE.drifted(0.05)  # Evidently: K-S <=, chi-square <
    assert drift.WASSERSTEIN.drifted(0.1) and not drift.JENSEN_SHANNON.drifted(0.099)


def test_profile_is_built_once_reused_and_picklable(months):
    reference = months[1].sample(3_000, random_state=1)
    window = months[7].sample(2_000, random_state=2)
    profile = ReferenceProfile.build(reference, NUMERIC, CATEGORICAL)
    del reference  # compare must need nothing but the profile

    first, second = profile.compare(window), profile.compare(window)
    restored = pickle.loads(pickle.dumps(profile))
    assert first == second == restored.compare(window)
    assert all(isinstance(c.values, np.ndarray) for c in restored.columns.values())
    assert "| column | type | method |" in first.to_markdown()


def test_empty_window_column_is_refused_like_evidently(months):
    profile = ReferenceProfile.build(months[1].head(500), ["temp"], [])
    with pytest.raises(ValueError, match="temp"):
        profile.compare(pd.DataFrame({"temp": [np.nan, np.inf]}))


def test_proxy_metrics_from_scores():
    proxies = ProxyMetrics.from_scores([0.0, 0.5, 1.0, np.nan], threshold=0.5)
    assert proxies.rows == 3
    assert proxies.positive_rate == pytest.approx(2 / 3)
    assert proxies.mean_score == pytest.approx(0.5)
    assert proxies.std_score == pytest.approx(math.sqrt(1 / 6))
    assert proxies.mean_entropy == pytest.approx(1 / 3, abs=1e-9)  # 0.5 is one bit, 0 and 1 none
    assert math.isnan(ProxyMetrics.from_scores([]).mean_score)


def test_prediction_drift_is_reported_apart_from_features(months):
    rng = np.random.default_rng(0)
    reference = months[1].head(2_000).assign(prediction=rng.beta(2, 5, 2_000))
    current = months[1].iloc[2_000:4_000].assign(prediction=rng.beta(5, 2, 2_000))
    profile = ReferenceProfile.build(reference, ["distance"], ["carrier"])

    result = profile.compare(current)
    assert [c.column for c in result.columns] == ["distance", "carrier"]
    assert result.prediction is not None and result.prediction.drifted
    assert result.prediction.method == "Wasserstein distance (normed)"
    shift = result.proxies.shift_from(result.reference_proxies)
    assert shift["mean_score"] > 0.3 and shift["positive_rate"] > 0.5
    assert "prediction" in result.to_markdown()

    without_scores = profile.compare(current.drop(columns="prediction"))
    assert without_scores.prediction is None and without_scores.proxies is None
