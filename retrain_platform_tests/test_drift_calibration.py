"""Calibrated drift on real flights: stationary traffic stays quiet, shifts that matter are flagged.

Reference: January and February in arrival order. Windows are contiguous stretches of traffic, as a
monitor sees them; the shifted ones are built from a stationary window by moving one column.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from retrain_platform.core.drift import ReferenceProfile
from retrain_platform.core.drift_calibration import DriftCalibration, NullSpread
from retrain_platform.core.alarms import raised_alarms
from retrain_platform.core.monitoring import ALERT, FLAG, OK, WARN, DriftPolicy, assess_drift
from retrain_platform.datasets.flights import FLIGHTS

WINDOW = 2_000


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    return FLIGHTS.load().sort_values(FLIGHTS.timestamp, kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(flights) -> pd.DataFrame:
    """Every other day of January and February; the days between are traffic it was not built from."""
    period = flights[flights[FLIGHTS.timestamp] < "2013-03-01"]
    return period[period[FLIGHTS.timestamp].dt.dayofyear % 2 == 0]


@pytest.fixture(scope="module")
def calibrated(reference):
    profile = ReferenceProfile.build(reference, FLIGHTS.numeric_features, FLIGHTS.categorical_features,
                                     prediction_column=None)  # fmt: skip
    importance = {name: 1.0 for name in FLIGHTS.feature_names} | {"distance": 3.0, "carrier": 3.0, "dep_hour": 0.0}
    return profile, DriftCalibration.fit(reference, profile, WINDOW, importance)


def unseen_windows(flights, count: int) -> list[pd.DataFrame]:
    """Contiguous traffic of the reference's period from the days it was not built from."""
    period = flights[flights[FLIGHTS.timestamp] < "2013-03-01"]
    unseen = period[period[FLIGHTS.timestamp].dt.dayofyear % 2 == 1].reset_index(drop=True)
    starts = np.linspace(0, len(unseen) - WINDOW, count).astype(int)
    return [unseen.iloc[s : s + WINDOW] for s in starts]


def test_stationary_traffic_stays_quiet_where_fixed_thresholds_fire(flights, calibrated):
    profile, calibration = calibrated
    windows = unseen_windows(flights, 12)
    results = [profile.compare(w, skip_empty=True) for w in windows]
    judged = [calibration.judge(r) for r in results]
    assert sum(r.n_drifted > 0 for r in results) >= 10  # Evidently's thresholds: an alarm almost always
    assert sum(bool(j.drifted_columns) for j in judged) <= 2  # calibrated: the rare false alarm


def test_a_shift_that_matters_is_flagged_and_one_the_model_ignores_only_warns(flights, calibrated):
    profile, calibration = calibrated
    window = unseen_windows(flights, 3)[1]
    moved = window.assign(distance=window["distance"] + 0.5 * flights["distance"].std())
    check = calibration.judge(profile.compare(moved))
    assert check.drifted_columns == ["distance"]
    assert assess_drift(check, DriftPolicy(min_importance=0.10)).level == FLAG

    ignored = window.assign(dep_hour=window["dep_hour"] + 0.5 * flights["dep_hour"].std())  # importance 0
    quiet = calibration.judge(profile.compare(ignored))
    assert quiet.drifted_columns == ["dep_hour"] and quiet.drifted_importance == 0
    assert assess_drift(quiet).level == WARN and not assess_drift(quiet).retrain

    assert assess_drift(calibration.judge(profile.compare(window))).level == OK


def test_a_carriers_share_doubled_is_flagged(flights, calibrated):
    profile, calibration = calibrated
    window = unseen_windows(flights, 3)[2]
    carrier = window["carrier"].value_counts().index[3]
    extra = window[window["carrier"] == carrier]
    doubled = pd.concat([window[window["carrier"] != carrier].iloc[len(extra):], extra, extra])
    assert "carrier" in calibration.judge(profile.compare(doubled)).drifted_columns


def test_a_column_without_enough_reference_keeps_evidentlys_verdict(reference):
    short = reference.iloc[:WINDOW]  # one window's worth: no stretches to learn the spread from
    profile = ReferenceProfile.build(short, ["distance"], [], prediction_column=None)
    calibration = DriftCalibration.fit(short, profile, WINDOW)
    check = calibration.judge(profile.compare(short.assign(distance=short["distance"] * 2)))
    assert not check.calibrated and check.drifted_columns == ["distance"]
    assert "not calibrated" in assess_drift(check).summary()


def test_calibration_pickles_and_leaving_rows_out_matches_a_fresh_profile(reference, calibrated):
    profile, calibration = calibrated
    assert pickle.loads(pickle.dumps(calibration)) == calibration
    rows = reference.iloc[1_000:3_000]
    rest = pd.concat([reference.iloc[:1_000], reference.iloc[3_000:]])
    fresh = ReferenceProfile.build(rest, FLIGHTS.numeric_features, FLIGHTS.categorical_features, prediction_column=None)
    for name, column in profile.without(rows).columns.items():
        np.testing.assert_array_equal(column.values, fresh.columns[name].values)
        np.testing.assert_array_equal(column.counts, fresh.columns[name].counts)
        assert column.std == pytest.approx(fresh.columns[name].std, rel=1e-9, nan_ok=True)


def test_the_bound_widens_when_few_stretches_are_known():
    few, many = NullSpread(0.0, 1.0, 6), NullSpread(0.0, 1.0, 100)
    assert few.bound_z(0.05) > many.bound_z(0.05) > 1.6


def test_retrain_reasons_weigh_drift_by_its_expected_impact():
    from dataclasses import replace

    from retrain_platform.core.estimation import ScoreCalibrator, estimate
    from retrain_platform.core.live_comparison import compare_live
    from retrain_platform.core.monitoring import ALERT, AucInterval, DriftAssessment, Evidence, retrain_reasons

    rng = np.random.default_rng(0)
    scores = rng.random(4_000)
    labels = (rng.random(4_000) < scores).astype(int)  # calibrated: the promise holds
    promised = AucInterval.of(labels, scores)
    drift = DriftAssessment(ALERT, ["temp drifted"])
    calibrator = ScoreCalibrator.fit(scores, labels)
    holding = estimate(calibrator.transform(scores), scores, 0.5)
    trigger, reasons = retrain_reasons(Evidence(drift=drift, promised=promised, estimated=holding), auc_floor=0.6)
    assert trigger is None and "no retrain for drift alone" in reasons[0]

    confused = rng.random(4_000)  # the window's scores say nothing any more: expected AUC near 0.5
    moved = estimate(np.full(4_000, 0.3), confused, 0.5)
    trigger, reasons = retrain_reasons(Evidence(drift=drift, promised=promised, estimated=moved), auc_floor=0.6)
    assert trigger == "drift" and "below the promised" in reasons[0]

    flipped = np.where(rng.random(4_000) < 0.2, 1 - labels, labels)
    realised = AucInterval.of(flipped, scores)
    trigger, reasons = retrain_reasons(Evidence(promised=promised, realised=realised), auc_floor=0.6)
    assert trigger == "performance" and "below what the holdout promised" in reasons[0]
    same = AucInterval.of(labels[:1_000], scores[:1_000])
    assert retrain_reasons(Evidence(promised=promised, realised=same), auc_floor=0.6) == (None, [])
    assert retrain_reasons(Evidence(realised=replace(same, auc=0.55)), auc_floor=0.6)[0] == "performance"

    sharper = np.clip(scores + rng.normal(0, 0.05, 4_000), 0, 1)
    noisy = np.clip(scores + rng.normal(0, 0.4, 4_000), 0, 1)
    live = compare_live(labels, noisy, sharper)
    assert retrain_reasons(Evidence(live=live), auc_floor=0.6)[0] == "challenger"


def test_a_model_past_its_age_asks_for_a_retrain_by_its_age_and_says_so():
    from retrain_platform.core.decisions import RetrainingDecision
    from retrain_platform.core.monitoring import AucInterval, Evidence, retrain_reasons

    old = Evidence(model_age_days=40.2)
    assert retrain_reasons(old, auc_floor=0.6) == (None, [])  # no limit by default
    trigger, reasons = retrain_reasons(old, auc_floor=0.6, max_age_days=35)
    assert trigger == "age" and reasons == ["the newest retrain's data is 40 days old (at most 35)"]
    assert retrain_reasons(Evidence(model_age_days=34.9), auc_floor=0.6, max_age_days=35) == (None, [])
    assert retrain_reasons(Evidence(model_age_days=None), auc_floor=0.6, max_age_days=35) == (None, [])  # no time axis
    # A finding keeps its trigger; the age is one more reason.
    realised = AucInterval(auc=0.55, se=0.01, rows=500)
    trigger, reasons = retrain_reasons(Evidence(realised=realised, model_age_days=40), auc_floor=0.6, max_age_days=35)
    assert trigger == "performance" and len(reasons) == 2
    # Decisions with any of monitoring's triggers read back from their files.
    for cause in ("challenger", "age"):
        decision = RetrainingDecision(decision_date=datetime(2013, 5, 1, tzinfo=UTC), retrain=True, reason="r", trigger=cause)
        assert RetrainingDecision.from_json(decision.to_json()).trigger == cause


# -- alarms: one per episode of drift ----------------------------------------------------------
def _checks(rows: list[tuple[str, str, str, list[str]]]) -> pd.DataFrame:
    """(traffic day, version, level, drifted columns) as the monitoring log gives them, oldest first."""
    return pd.DataFrame([{"checked_at": pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=1),
                          "event_time": pd.Timestamp(day, tz="UTC"), "model_version": version, "level": level,
                          "drifted_columns": columns} for day, version, level, columns in rows])  # fmt: skip


def test_persistent_drift_raises_one_alarm_per_episode_and_version():
    checks = _checks([
        ("2013-04-10", "2", OK, []),
        ("2013-04-11", "2", FLAG, ["dest", "temp"]),  # an episode starts
        ("2013-04-12", "2", FLAG, ["dest"]),
        ("2013-04-13", "2", WARN, []),  # a quiet check within the quiet spell does not end it
        ("2013-04-16", "2", FLAG, ["dest", "precip"]),
        ("2013-04-17", "3", FLAG, ["carrier"]),  # another version: its own episode
        ("2013-04-18", "2", ALERT, ["dest", "precip", "visib"]),  # an escalation raises
        ("2013-04-19", "2", ALERT, ["dest"]),
        ("2013-04-27", "2", FLAG, ["dest"]),  # 8 days after the last flagged check: a new episode
    ])  # fmt: skip
    alarms = raised_alarms(checks, quiet_days=7)
    assert [(str(a.event_time.date()), a.model_version, a.level) for a in alarms.itertuples()] == [
        ("2013-04-11", "2", FLAG), ("2013-04-17", "3", FLAG), ("2013-04-18", "2", ALERT), ("2013-04-27", "2", FLAG)]
    first = alarms.iloc[0]
    assert first["episode_checks"] == 5 and str(first["episode_last"].date()) == "2013-04-19"
    assert first["episode_columns"][0] == "dest" and set(first["episode_columns"]) == {"dest", "temp", "precip", "visib"}
    assert alarms.iloc[2]["episode_checks"] == 5  # the escalation belongs to the same episode
    assert len(raised_alarms(checks, quiet_days=0)) == 7  # no grouping: an alarm at every flagged check
    assert raised_alarms(checks[checks["level"] == OK]).empty
