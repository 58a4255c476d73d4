"""Retraining decisions: the policy, the file format, the decisions folder and the sensors that act on them."""

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pandas as pd
import pytest

from retrain_platform.core.decisions import (
    DecisionError,
    RetrainingDecision,
    RetrainPolicy,
    apply_policy,
)
from retrain_platform.datasets import FLIGHTS
from retrain_platform.decision_files import DecisionFolder
from retrain_platform.definitions import build_definitions

from .conftest import make_settings, run_job

NOW = datetime(2013, 5, 1, 12, tzinfo=UTC)


def wish(**overrides) -> RetrainingDecision:
    values = dict(decision_date=NOW, retrain=True, reason="drift share 0.38 > 20%", trigger="drift")
    return RetrainingDecision(**(values | overrides))


def test_policy_retrains_when_nothing_stands_in_the_way():
    decision = apply_policy(wish(), [NOW - timedelta(days=3)], NOW)
    assert decision.retrain and decision.reason.endswith("; retraining")
    assert apply_policy(decision, [NOW - timedelta(days=3)], NOW) == decision  # the sensor re-applies it


def test_policy_cooldown_and_force():
    recent = [NOW - timedelta(hours=5)]
    refused = apply_policy(wish(), recent, NOW)
    assert not refused.retrain and "cooldown, the last retrain was 5.0 h ago (< 24 h)" in refused.reason
    assert apply_policy(wish(force=True, trigger="manual"), recent, NOW).retrain


def test_policy_weekly_limit_holds_even_when_forced():
    recent = [NOW - timedelta(days=d) for d in (1, 3, 6)] + [NOW - timedelta(days=9)]
    refused = apply_policy(wish(force=True, trigger="manual"), recent, NOW, RetrainPolicy(max_per_week=3))
    assert not refused.retrain and "weekly limit reached (3 retrains since 2013-04-24, at most 3)" in refused.reason
    assert not apply_policy(wish(retrain=False, reason="no drift"), [], NOW).retrain


def test_decision_round_trip_and_errors_name_the_field():
    decision = wish(performance_score=0.61, model_version="3", dataset="flights")
    assert RetrainingDecision.from_json(decision.to_json()) == decision
    good = json.loads(decision.to_json())
    cases = {
        "decision_date": ({**good, "decision_date": "yesterday"}, "decision_date"),
        "retrain": ({**good, "retrain": "yes"}, "retrain"),
        "trigger": ({**good, "trigger": "gut feeling"}, "trigger"),
        "score": ({**good, "performance_score": "high"}, "performance_score"),
        "missing": ({k: v for k, v in good.items() if k != "reason"}, "reason"),
        "unknown": ({**good, "colour": "blue"}, "colour"),
    }
    for name, (data, field) in cases.items():
        with pytest.raises(DecisionError, match=field):
            RetrainingDecision.from_json(json.dumps(data))
    with pytest.raises(DecisionError, match="not JSON"):
        RetrainingDecision.from_json("{oops")


def sensor_tick(defs, instance, name="decision_file_sensor"):
    context = dg.build_sensor_context(instance=instance, definitions=defs)
    return defs.resolve_sensor_def(name).evaluate_tick(context)


def test_decision_sensor_takes_each_file_once_and_rejects_bad_ones(tmp_path, instance):
    settings = make_settings(tmp_path)
    defs = build_definitions(settings)
    folder = DecisionFolder(settings.decisions_dir)
    good = wish(decision_date=datetime.now(UTC), trigger="manual", reason="analyst: new routes from Monday")
    folder.drop(good)
    (folder.inbox / "broken.json").write_text('{"retrain": "maybe"}')

    first = sensor_tick(defs, instance)
    [request] = first.run_requests
    assert request.run_key == good.decision_id  # the sensor targets the retrain job
    assert request.tags["retrain_platform/trigger"] == "manual"
    assert request.run_config["ops"]["raw_data"]["config"]["window_days"] == settings.retrain_window_days
    assert not folder.pending()
    assert "missing field 'decision_date'" in (folder.rejected / "broken.json.error.txt").read_text()
    [archived] = folder.archive.glob("*.json")
    assert json.loads(archived.read_text())["reason"].endswith("; retraining")
    assert sensor_tick(defs, instance).skip_message == "no decision files in the inbox"  # exactly once


def test_decision_sensor_enforces_the_weekly_limit_from_runs_in_the_instance(tmp_path, instance):
    settings = make_settings(tmp_path, max_retrains_per_week=1)
    defs = build_definitions(settings)
    run = run_job(defs, instance, raw_data={"window_days": 20, "window_end": "2013-02-28"},
                  candidate_model={"max_rounds": 5}, evaluation_report={"auc_floor": 0.5, "recall_floor": 0.0})  # fmt: skip
    assert run.success
    DecisionFolder(settings.decisions_dir).drop(wish(decision_date=datetime.now(UTC), force=True, trigger="manual"))
    tick = sensor_tick(defs, instance)
    assert not tick.run_requests and "weekly limit reached (1 retrains" in tick.skip_message


class Webhook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        Webhook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_failed_run_becomes_an_alert_and_a_webhook_post(tmp_path, instance):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bad = FLIGHTS.load().head(3_000).assign(carrier="ZZ")  # every row an unknown carrier
    path = tmp_path / "bad.parquet"
    bad.to_parquet(path)
    settings = make_settings(tmp_path, history_path=str(path), alert_webhook_url=f"http://127.0.0.1:{server.server_port}/alerts")
    defs = build_definitions(settings)
    result = run_job(defs, instance, raw_data={"window_days": 5})
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert", dagster_instance=instance, dagster_run=result.dagster_run, dagster_event=failure,
    ).for_run_failure()  # fmt: skip
    defs.resolve_sensor_def("run_failure_alert")(context)
    server.shutdown()
    [alert] = [json.loads(line) for line in (settings.home_dir / "alerts.jsonl").read_text().splitlines()]
    assert alert["run_id"] == result.run_id and alert["kind"] == "rejected or blocked by checks"
    assert alert["failed_steps"] == ["validated_features"]
    assert Webhook.received == [alert]


def test_retraining_decision_asset_writes_a_file_the_sensor_acts_on(tmp_path, instance):
    from retrain_platform_tests.test_monitoring import flights_between, serve

    settings = make_settings(tmp_path, drift_min_new_predictions=100, drift_window_rows=2_000)
    defs = build_definitions(settings)
    assert run_job(defs, instance, raw_data={"window_days": 28, "window_end": "2013-02-28"},
                   candidate_model={"max_rounds": 20}, evaluation_report={"auc_floor": 0.5, "recall_floor": 0.0}).success  # fmt: skip
    serve(settings, flights_between("2013-07-01", "2013-07-15", 1_500))
    monitor = defs.resolve_job_def("monitor").execute_in_process(instance=instance, tags={"retrain_platform/trigger": "drift"})
    decision = monitor.output_for_node("retraining_decision")
    # The bootstrap retrain a moment ago is inside the 24 h cooldown: the decision says so.
    assert decision["retrain"] is False and "cooldown" in decision["reason"] and "drifted" in decision["reason"]
    archived = sensor_tick(defs, instance)
    assert not archived.run_requests and "cooldown" in archived.skip_message
    assert pd.Timestamp(json.loads(next(DecisionFolder(settings.decisions_dir).archive.glob("*.json")).read_text())["decision_date"])
