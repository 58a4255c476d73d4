"""When a retrain is worth its cost: `retrain_timing` (pure) and the offline simulation that uses it."""

import pandas as pd
import pytest

from retrain_platform.core.decisions import RetrainTiming, retrain_timing
from retrain_platform.datasets import FLIGHTS
from retrain_platform.replay.baselines import new_label_retrains


def test_enough_new_labels_against_the_window():
    timing = RetrainTiming(min_new_label_share=0.5)
    due, enough, why = retrain_timing(29_000, 60_000, 20.0, timing)
    assert (due, enough) == (False, False)
    assert "29,000 labels since the model, 30,000 needed (50% of the 60,000 rows of the retrain window)" in why
    assert retrain_timing(30_000, 60_000, 20.0, timing)[:2] == (False, True)


def test_an_old_model_is_due_whatever_the_labels():
    timing = RetrainTiming(min_new_label_share=0.5, max_model_age_days=35)
    assert retrain_timing(10, 60_000, 34.9, timing)[:2] == (False, False)
    due, enough, why = retrain_timing(10, 60_000, 35.0, timing)
    assert (due, enough) == (True, True)
    assert why == "model age 35.0 days >= 35: retrain due"
    # Age unknown (a model without a recorded window): only the share decides.
    assert retrain_timing(10, 60_000, None, timing)[:2] == (False, False)


def test_no_rule_or_unknown_window_never_holds_back():
    assert retrain_timing(0, 60_000, 1.0, RetrainTiming(min_new_label_share=0)) == (False, True, "no new-label rule")
    assert retrain_timing(0, None, 1.0, RetrainTiming())[:2] == (False, True)
    assert retrain_timing(0, 0, 1.0, RetrainTiming())[:2] == (False, True)


@pytest.mark.parametrize("timing", [RetrainTiming(min_new_label_share=-0.1), RetrainTiming(max_model_age_days=0)])
def test_bad_settings_are_refused(timing):
    with pytest.raises(ValueError):
        retrain_timing(1, 1, 1.0, timing)


def _traffic(days: int, per_day: int = 10) -> pd.DataFrame:
    """`per_day` rows a day from 2013-01-01: only the timestamp matters to the schedule."""
    times = pd.date_range("2013-01-01", periods=days, freq="D").repeat(per_day)
    return pd.DataFrame({FLIGHTS.timestamp: times + pd.Timedelta(hours=8)})


def test_share_of_all_history_retrains_ever_more_rarely_share_of_a_window_does_not():
    history, day = _traffic(365), pd.Timedelta(days=1)
    growing = new_label_retrains(history, FLIGHTS, "2013-03-01", 0.25, day)
    gaps = [(b - a).days for a, b in zip(growing, growing[1:], strict=False)]
    assert gaps == sorted(gaps) and gaps[-1] > 2 * gaps[0]
    steady = new_label_retrains(history, FLIGHTS, "2013-03-01", 0.5, day, window_days=60)
    gaps = {(b - a).days for a, b in zip(steady, steady[1:], strict=False)}
    assert gaps == {30}  # 50 % of a 60-day window: every 30 days once the first model's 59 days are replaced


def test_max_age_retrains_on_a_fixed_cadence_without_peeking_at_labels_not_yet_in():
    history = _traffic(365)
    retrains = new_label_retrains(history, FLIGHTS, "2013-03-01", None, pd.Timedelta(days=1), max_age_days=35)
    # The first model learned up to 2013-02-28; on 04-06 the labels reach 04-04 inclusive: 35 days on.
    assert retrains[0] == pd.Timestamp("2013-04-06")
    assert {(b - a).days for a, b in zip(retrains, retrains[1:], strict=False)} == {35}
