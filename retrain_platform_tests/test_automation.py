"""Automation on a real temporary Dagster instance: the decision-file sensor, the schedules and the
run-failure alerts, with real files, real runs of the retrain job and a real local webhook."""

import json
import os
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import dagster as dg
import pytest

from retrain_platform.core import clock
from retrain_platform.core.decisions import RetrainingDecision
from retrain_platform.datasets import FLIGHTS
from retrain_platform.decisions.folder import DecisionFolder
from retrain_platform.definitions import build_definitions

from .conftest import make_settings, pythonic_resources, run_job
from .test_monitoring import flights_between, serve

FAST = {"candidate_model": {"config": {"max_rounds": 5}}}  # the sensor's run, made quick for a test
LENIENT_GATES = json.dumps({"auc_floor": 0.5, "recall_floor": 0.0})


def tick(defs, instance, cursor=None, name="decision_file_sensor"):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=pythonic_resources(defs), definitions=defs)
    return defs.resolve_sensor_def(name).evaluate_tick(context)


def schedule_tick(defs, instance, name: str, **kwargs):
    """Evaluate a schedule as the daemon would; the context is closed after (it opens the instance again)."""
    with dg.build_schedule_context(instance=instance, resources=pythonic_resources(defs), **kwargs) as context:
        return defs.resolve_schedule_def(name).evaluate_tick(context)


def manual(reason: str, **overrides) -> RetrainingDecision:
    values = {"decision_date": clock.now(), "retrain": True, "reason": reason, "trigger": "manual", "source": "analyst"}
    return RetrainingDecision(**(values | overrides))


def make_old(path, seconds: float = 60) -> None:
    os.utime(path, (time.time() - seconds, time.time() - seconds))


def merged(config: dict, extra: dict) -> dict:
    return {"ops": {**config["ops"], **extra}}


def test_decision_files_become_retrain_runs_once_within_the_policy(tmp_path, instance):
    # Drift alone asks for a retrain here: the monitoring decision below must meet the cooldown.
    settings = make_settings(tmp_path, retrain_window_days=30, retrain_gates=LENIENT_GATES, drift_retrains_alone=True)
    defs = build_definitions(settings)
    folder = DecisionFolder(settings.decisions_dir)
    assert tick(defs, instance).skip_message == "no decision files in the inbox"

    good = manual("analyst: new routes from Monday")
    good_file = folder.drop(good)
    (folder.inbox / "broken.json").write_text('{"retrain": "maybe"}')  # just written: might be half done
    (folder.inbox / "garbage.json").write_bytes(b"\x89PNG\r\n")
    make_old(folder.inbox / "garbage.json")

    first = tick(defs, instance)
    [request] = first.run_requests
    assert request.run_key == good.decision_id and request.job_name in (None, "retrain")
    assert request.tags["retrain_platform/trigger"] == "manual"
    assert request.tags["retrain_platform/decision_id"] == good.decision_id
    assert request.run_config["ops"]["raw_data"]["config"]["window_days"] == 30
    assert "not UTF-8" in (folder.rejected / "garbage.json.error.txt").read_text()
    # The approved file stays in the inbox until its run exists; the half-written one is looked at again.
    assert not list(folder.archive.glob("*.json"))
    assert sorted(p.name for p in folder.pending()) == sorted(["broken.json", good_file.name])

    # The daemon died before launching the run: the next tick asks for it again, under the same key.
    make_old(folder.inbox / "broken.json")
    second = tick(defs, instance, cursor=first.cursor)
    assert [r.run_key for r in second.run_requests] == [good.decision_id]
    assert "missing field 'decision_date'" in (folder.rejected / "broken.json.error.txt").read_text()

    # The request, launched through the real job as the daemon would (fewer boosting rounds).
    run = defs.resolve_job_def("retrain").execute_in_process(
        instance=instance, tags=request.tags, run_config=merged(request.run_config, FAST)
    )
    assert run.success
    assert instance.get_run_by_id(run.run_id).tags["retrain_platform/decision_id"] == good.decision_id

    # Its run exists now: the file is archived with the outcome, and taken exactly once.
    third = tick(defs, instance, cursor=second.cursor)
    assert not third.run_requests and "its run was launched" in third.skip_message
    [archived] = folder.archive.glob("*.json")
    record = json.loads(archived.read_text())
    assert archived.name.endswith(".retrain.json") and record["retrain"] and record["reason"].endswith("; retraining")
    assert record["outcome"]["run_key"] == good.decision_id and record["outcome"]["asked"]["retrain"]
    assert tick(defs, instance, cursor=third.cursor).skip_message == "no decision files in the inbox"
    second = third  # the cursor the rest of this test goes on from

    # A copy of a decision already acted on claims nothing, even with the sensor's memory lost.
    shutil.copy(archived, folder.inbox / "again.json")
    copy = tick(defs, instance, cursor=None)
    assert not copy.run_requests and "was taken before" in copy.skip_message
    assert (folder.archive / "again.duplicate.json").exists()

    # The run that just ended is inside the 24 h cooldown: a drift decision waits, a forced one goes.
    folder.drop(RetrainingDecision(decision_date=clock.now(), retrain=True, reason="drift share 0.4 > 0.2",
                                   trigger="drift", dataset="flights"))  # fmt: skip
    cooled = tick(defs, instance, cursor=second.cursor)
    assert (
        not cooled.run_requests
        and "not retraining: cooldown, the last retrain was 0.0 h ago (< 24 h)" in cooled.skip_message
    )
    forced = manual("analyst: the fare change", force=True)
    folder.drop(forced)
    going = tick(defs, instance, cursor=cooled.cursor)
    [go] = going.run_requests
    assert go.run_key == forced.decision_id and "forced past the cooldown" in go.tags["retrain_platform/reason"]
    # As the daemon does with a request: the run goes into the instance (queued, never executed here).
    instance.create_run_for_job(defs.resolve_job_def("retrain"), run_config=go.run_config, tags=go.tags)
    folder.drop(manual("wrong platform", dataset="breast_cancer", force=True))
    last = tick(defs, instance, cursor=going.cursor)
    assert not last.run_requests and "this platform retrains 'flights'" in last.skip_message
    assert "its run was launched" in last.skip_message and not folder.pending()

    # The daily monitoring schedule now has a model to watch.
    daily = defs.resolve_schedule_def("daily_monitoring")
    [monitor] = schedule_tick(defs, instance, "daily_monitoring").run_requests
    assert monitor.tags["retrain_platform/model_version"] == "1"
    assert {k.to_user_string() for k in defs.resolve_job_def(daily.job_name).asset_layer.selected_asset_keys} == {
        "drift_report", "retraining_decision"}  # fmt: skip

    # The monitoring asset's decision goes through the same inbox, and meets the same cooldown.
    serve(settings, flights_between("2013-07-01", "2013-07-15", 600))
    monitored = defs.resolve_job_def("monitor").execute_in_process(instance=instance, tags=monitor.tags)
    decision = monitored.output_for_node("retraining_decision")
    assert decision["retrain"] is False and "cooldown" in decision["reason"] and "drifted" in decision["reason"]
    after = tick(defs, instance)
    assert not after.run_requests and "cooldown" in after.skip_message
    record = folder.taken()[-1]
    assert record["decision_id"] == decision["decision_id"] and record["source"] == f"dagster run {monitored.run_id}"


def test_weekly_limit_counts_retrain_runs_in_the_instance_on_the_platform_clock(tmp_path, instance, monkeypatch):
    settings = make_settings(tmp_path, max_retrains_per_week=3)
    defs = build_definitions(settings)
    folder = DecisionFolder(settings.decisions_dir)
    simulated = tmp_path / "clock.txt"
    monkeypatch.setenv(clock.CLOCK_FILE_ENV, str(simulated))  # as in a replay
    clock.set_simulated(simulated, datetime(2013, 5, 1, 12, tzinfo=UTC))
    retrain = defs.resolve_job_def("retrain")
    for days in (1.5, 3, 6):  # runs the sensor launched, counted when their decisions were taken
        taken = clock.now() - timedelta(days=days)
        instance.create_run_for_job(retrain, tags={"retrain_platform/decision_date": taken.isoformat()})
    instance.create_run_for_job(retrain)  # the Materialize button, just now by the wall clock: the simulated future

    folder.drop(manual("analyst: forced", force=True))
    refused = tick(defs, instance)
    assert not refused.run_requests
    assert "not retraining: weekly limit reached (3 retrains since 2013-04-24, at most 3)" in refused.skip_message
    [archived] = folder.taken()
    assert archived["retrain"] is False and archived["outcome"]["status"] == "no-retrain"
    assert archived["outcome"]["asked"]["retrain"] is True

    clock.set_simulated(simulated, datetime(2013, 5, 2, 13, tzinfo=UTC))  # the oldest one has left the week
    folder.drop(manual("analyst: still forced", force=True))
    still = tick(defs, instance, cursor=refused.cursor)
    [request] = still.run_requests
    assert request.tags["retrain_platform/decision_date"] == "2013-05-02T13:00:00+00:00"
    instance.create_run_for_job(retrain, tags=request.tags)  # as the daemon does with the request
    # Two files in one tick: the first one's retrain counts for the second.
    folder.drop(manual("one", decision_date=datetime(2013, 5, 9, 1, tzinfo=UTC)))
    folder.drop(manual("two", decision_date=datetime(2013, 5, 9, 2, tzinfo=UTC)))
    clock.set_simulated(simulated, datetime(2013, 5, 9, 3, tzinfo=UTC))
    both = tick(defs, instance, cursor=still.cursor)
    assert [r.tags["retrain_platform/reason"] for r in both.run_requests] == ["one; retraining"]
    assert folder.taken()[-1]["reason"] == "two; not retraining: cooldown, the last retrain was 0.0 h ago (< 24 h)"


def test_weekly_schedule_goes_through_the_policy_and_is_archived(tmp_path, instance):
    settings = make_settings(tmp_path)
    defs = build_definitions(settings)
    weekly = defs.resolve_schedule_def("weekly_retrain")
    assert (weekly.cron_schedule, weekly.job_name, weekly.default_status) == (
        "0 3 * * 1", "retrain", dg.DefaultScheduleStatus.RUNNING)  # fmt: skip
    monday = datetime(2026, 3, 2, 3, tzinfo=UTC)
    [request] = schedule_tick(defs, instance, "weekly_retrain", scheduled_execution_time=monday).run_requests
    assert request.tags["retrain_platform/trigger"] == "schedule"
    assert request.run_config["ops"]["raw_data"]["config"]["window_days"] == settings.retrain_window_days
    again = schedule_tick(defs, instance, "weekly_retrain", scheduled_execution_time=monday)
    assert again.run_requests[0].run_key == request.run_key  # one run per tick, however often evaluated

    instance.create_run_for_job(defs.resolve_job_def("retrain"))  # someone pressed Materialize just now
    skipped = schedule_tick(defs, instance, "weekly_retrain", scheduled_execution_time=monday + timedelta(days=7))
    assert not skipped.run_requests and "not retraining: cooldown" in skipped.skip_message
    made = DecisionFolder(settings.decisions_dir).taken()  # one record per tick, beside the other decisions
    assert [(d["trigger"], d["retrain"], d["outcome"]["status"]) for d in made] == [
        ("schedule", True, "retrain"), ("schedule", False, "no-retrain")]  # fmt: skip
    assert made[0]["outcome"]["run_key"] == request.run_key and made[1]["outcome"]["run_key"] is None

    quiet = schedule_tick(defs, instance, "daily_monitoring")
    assert quiet.skip_message == "no production model yet: nothing to monitor"


class Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list] = []
    status: ClassVar[int] = 204

    def do_POST(self):
        type(self).received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    handler = type("Handler", (Webhook,), {"received": [], "status": 204})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_port}/alerts"
    server.shutdown()
    server.server_close()


def alert_on(defs, instance, result) -> None:
    """Evaluate the failure sensor on a real failed run, as the daemon would."""
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert", dagster_instance=instance, dagster_run=result.dagster_run, dagster_event=failure,
        resources=pythonic_resources(defs),
    ).for_run_failure()  # fmt: skip
    defs.resolve_sensor_def("run_failure_alert")(context)


def alerts(settings) -> list[dict]:
    return [json.loads(line) for line in (settings.home_dir / "alerts.jsonl").read_text().splitlines()]


def test_blocked_batch_becomes_an_alert_and_a_webhook_post(tmp_path, instance, webhook):
    handler, url = webhook
    bad = FLIGHTS.load().head(3_000).assign(carrier="ZZ")  # every row an unknown carrier
    path = tmp_path / "bad.parquet"
    bad.to_parquet(path)
    settings = make_settings(tmp_path, history_path=str(path), alert_webhook_url=url)
    defs = build_definitions(settings)
    alert_on(defs, instance, run_job(defs, instance, raw_data={"window_days": 5}))
    [alert] = alerts(settings)
    assert alert["kind"] == "blocked" and alert["job"] == "retrain" and alert["failed_steps"] == ["validated_features"]
    assert alert["summary"].startswith("batch blocked by data checks: validated_features.schema_valid: ")
    assert "validated_features.schema_valid" in alert["failed_checks"]
    assert handler.received == [alert]


def test_rejected_candidate_and_error_are_told_apart_and_a_failing_webhook_is_only_logged(tmp_path, instance, webhook):
    handler, url = webhook
    handler.status = 500
    settings = make_settings(tmp_path, alert_webhook_url=url)
    defs = build_definitions(settings)
    rejected = run_job(defs, instance, raw_data={"window_days": 30, "window_end": "2013-02-28"},
                       candidate_model={"max_rounds": 5}, evaluation_report={"auc_floor": 0.99, "recall_floor": 0.0})  # fmt: skip
    alert_on(defs, instance, rejected)
    alert_on(defs, instance, run_job(defs, instance, raw_data={"window_days": 30, "window_end": "the 31st of Smarch"}))
    gates, error = alerts(settings)
    assert gates["kind"] == "rejected" and gates["run_id"] == rejected.run_id
    assert gates["summary"].startswith("candidate rejected by gates: auc_floor = 0.")
    assert gates["summary"].endswith("(needs >= 0.99)") and gates["failed_checks"] == ["evaluation_report.gates_passed"]
    assert error["kind"] == "error" and error["failed_checks"] == []
    assert error["summary"].startswith("error in raw_data: ") and "Smarch" in error["summary"]
    assert len(handler.received) == 2  # POSTed, answered 500, logged: the alerts are on file anyway

    for bad_url in ("http://127.0.0.1:9/alerts", "not a url"):  # nobody listening, not even a URL: never raises
        alert_on(build_definitions(settings.model_copy(update={"alert_webhook_url": bad_url})), instance, rejected)
    assert len(alerts(settings)) == 4
