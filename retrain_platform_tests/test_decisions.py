"""Retraining decisions without Dagster: the policy, the file format and the decisions folder."""

import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from retrain_platform.core.decisions import (
    DecisionError,
    RetrainingDecision,
    RetrainPolicy,
    apply_policy,
)
from retrain_platform.decisions.folder import DecisionFolder

NOW = datetime(2013, 5, 1, 12, tzinfo=UTC)


def wish(**overrides) -> RetrainingDecision:
    values = {
        "decision_date": NOW,
        "retrain": True,
        "reason": "drift share 0.35 > 0.20 on 6 of 17 columns",
        "trigger": "drift",
    }
    return RetrainingDecision(**(values | overrides))


# The policy ----------------------------------------------------------------------------------


def test_policy_retrains_when_nothing_stands_in_the_way_and_says_so_once():
    decision = apply_policy(wish(), [NOW - timedelta(days=3)], NOW)
    assert decision.retrain and decision.reason == "drift share 0.35 > 0.20 on 6 of 17 columns; retraining"
    assert apply_policy(decision, [NOW - timedelta(days=3)], NOW) == decision  # the sensor re-applies it
    no = wish(retrain=False, reason="no drift")
    assert apply_policy(no, [], NOW) == no  # a wish not to retrain is never turned into one


def test_policy_cooldown_and_force():
    recent = [NOW - timedelta(days=2), NOW - timedelta(hours=5)]
    refused = apply_policy(wish(), recent, NOW)
    assert not refused.retrain
    assert refused.reason == ("drift share 0.35 > 0.20 on 6 of 17 columns; not retraining: cooldown, "
                              "the last retrain was 5.0 h ago (< 24 h)")  # fmt: skip
    forced = apply_policy(wish(force=True, trigger="manual", reason="analyst: new routes"), recent, NOW)
    assert forced.retrain
    assert forced.reason == "analyst: new routes; forced past the cooldown (the last retrain was 5.0 h ago); retraining"
    assert apply_policy(wish(), recent, NOW, RetrainPolicy(cooldown_hours=4)).retrain
    # A cooldown longer than the week still looks at the latest retrain.
    assert not apply_policy(wish(), [NOW - timedelta(days=8)], NOW, RetrainPolicy(cooldown_hours=24 * 10)).retrain


def test_policy_weekly_limit_holds_even_when_forced():
    recent = [NOW - timedelta(days=d) for d in (1, 3, 6)] + [NOW - timedelta(days=9)]
    refused = apply_policy(wish(force=True, trigger="manual"), recent, NOW, RetrainPolicy(max_per_week=3))
    assert not refused.retrain
    assert refused.reason.endswith("; not retraining: weekly limit reached (3 retrains since 2013-04-24, at most 3)")
    # A retrain 7 days ago to the second has left the window; one a day later has not.
    assert apply_policy(
        wish(), [NOW - timedelta(days=7), NOW - timedelta(days=2)], NOW, RetrainPolicy(max_per_week=2)
    ).retrain
    assert not apply_policy(
        wish(), [NOW - timedelta(days=6), NOW - timedelta(days=2)], NOW, RetrainPolicy(max_per_week=2)
    ).retrain
    assert not apply_policy(wish(force=True), [], NOW, RetrainPolicy(max_per_week=0)).retrain


def test_policy_ignores_the_simulated_future_and_reads_naive_times_as_utc():
    wall_clock_runs = [datetime(2026, 1, 1, tzinfo=UTC)] * 5  # created by the wall clock during a 2013 replay
    assert apply_policy(wish(), wall_clock_runs, NOW).retrain
    naive = NOW.replace(tzinfo=None) - timedelta(hours=1)
    assert "1.0 h ago" in apply_policy(wish(), [naive], NOW).reason


# The file format -----------------------------------------------------------------------------


def good() -> dict:
    return json.loads(wish(performance_score=0.61, model_version="3", dataset="flights", drift_share=0.35).to_json())


def test_decision_round_trips_through_json():
    decision = wish(performance_score=0.61, model_version="3", dataset="flights", drift_share=0.35, source="run 1")
    assert RetrainingDecision.from_json(decision.to_json()) == decision
    data = json.loads(decision.to_json())
    assert set(data) >= {"decision_id", "decision_date", "performance_score", "retrain", "reason", "trigger",
                         "model_version", "dataset", "drift_share", "source", "force"}  # fmt: skip
    assert data["decision_date"] == "2013-05-01T12:00:00+00:00"


def test_a_person_writes_only_the_essentials():
    text = '{"decision_date": "2013-05-01T08:00", "retrain": true, "reason": "new routes", "trigger": "manual", "force": true}'
    decision = RetrainingDecision.from_json(text)
    assert decision.decision_date == datetime(2013, 5, 1, 8, tzinfo=UTC)  # no zone: UTC
    assert decision.force and decision.source == "unknown" and decision.model_version is None
    # No id: one derived from the content, so the same file dropped twice is one decision.
    assert RetrainingDecision.from_json(text).decision_id == decision.decision_id
    other = text.replace("new routes", "newer routes")
    assert RetrainingDecision.from_json(other).decision_id != decision.decision_id
    # What the sensor adds to an archived file is ignored when such a file is read again.
    data = good()
    assert (
        RetrainingDecision.from_json(json.dumps({**data, "outcome": {"status": "retrain"}})).decision_id
        == data["decision_id"]
    )
    assert RetrainingDecision.from_json(json.dumps({**good(), "model_version": 3})).model_version == "3"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"decision_date": "yesterday"}, "decision_date"),
        ({"decision_date": 20130501}, "decision_date"),
        ({"retrain": "yes"}, "retrain"),
        ({"retrain": 1}, "retrain"),
        ({"trigger": "gut feeling"}, "trigger"),
        ({"reason": ""}, "reason"),
        ({"reason": 42}, "reason"),
        ({"performance_score": "high"}, "performance_score"),
        ({"performance_score": True}, "performance_score"),
        ({"drift_share": 1.5}, "drift_share"),
        ({"model_version": ["3"]}, "model_version"),
        ({"force": "true"}, "force"),
        ({"source": 7}, "source"),
        ({"decision_id": "../../etc/passwd"}, "decision_id"),
        ({"decision_id": 17}, "decision_id"),
        ({"colour": "blue"}, "colour"),
        ({"reason": None}, "reason"),
    ],
)
def test_parsing_errors_name_the_field(change, field):
    data = {**good(), **change}
    if data.get("reason") is None:
        del data["reason"]
    with pytest.raises(DecisionError, match=field):
        RetrainingDecision.from_json(json.dumps(data))


def test_parsing_errors_for_what_is_not_a_decision_at_all():
    with pytest.raises(DecisionError, match="not JSON"):
        RetrainingDecision.from_json("{oops")
    with pytest.raises(DecisionError, match="JSON object, got list"):
        RetrainingDecision.from_json("[1, 2]")
    with pytest.raises(DecisionError, match="missing field 'decision_date'"):
        RetrainingDecision.from_json('{"retrain": "maybe"}')


# The decisions folder ------------------------------------------------------------------------


def test_drop_is_atomic_and_pending_is_oldest_first(tmp_path):
    folder = DecisionFolder(tmp_path / "decisions")
    first = folder.drop(wish(decision_date=NOW - timedelta(hours=1)))
    second = folder.drop(wish())
    os.utime(first, (time.time() - 60, time.time() - 60))
    (folder.inbox / ".half-written.json").write_text("{")  # hidden: someone's temporary file
    (folder.inbox / "notes.txt").write_text("not a decision")
    assert folder.pending() == [first, second]
    assert first.name.startswith("20130501T110000-drift-") and not list(folder.inbox.glob("*.tmp"))
    assert folder.read(second) == wish(decision_id=folder.read(second).decision_id)


def test_archive_and_reject_never_overwrite(tmp_path):
    folder = DecisionFolder(tmp_path / "decisions").create()
    names = []
    for reason in ("first", "second"):
        path = folder.inbox / "request.json"
        path.write_text(wish(reason=reason).to_json())
        names.append(folder.archive_as(path, folder.read(path), {"run_key": "k"}).name)
    assert names == ["request.retrain.json", "request.retrain.2.json"] and not folder.pending()
    assert [d["reason"] for d in folder.taken()] == ["first", "second"]
    assert folder.taken()[0]["outcome"] == {"run_key": "k", "status": "retrain", "file": "request.json"}

    for content in (b"\xff\xfe binary", b"{}"):
        path = folder.inbox / "bad.json"
        path.write_bytes(content)
        with pytest.raises(DecisionError) as err:
            folder.read(path)
        folder.reject(path, err.value)
    assert sorted(p.name for p in folder.rejected.iterdir()) == [
        "bad.2.json", "bad.2.json.error.txt", "bad.json", "bad.json.error.txt"]  # fmt: skip
    assert "not UTF-8" in (folder.rejected / "bad.json.error.txt").read_text()
    assert "missing field 'decision_date'" in (folder.rejected / "bad.2.json.error.txt").read_text()


def test_the_retrain_of_a_forced_decision_says_so_and_others_do_not():
    from retrain_platform.decisions.runs import retrain_request
    from retrain_platform.names import FORCE_TAG

    forced = retrain_request(wish(force=True, trigger="manual"), NOW, {})
    assert forced.tags[FORCE_TAG] == "true"  # the evaluation skips the promotion cooldown for it
    assert FORCE_TAG not in retrain_request(wish(), NOW, {}).tags
