"""Names that serving, assets, sensors and the replay share: jobs, run tags, checks, pools.

No Dagster import here, so that serving can read them too.
"""

# Jobs
RETRAIN_JOB = "retrain"
MONITOR_JOB = "monitor"
ROLLBACK_JOB = "rollback_job"
REEVALUATE_JOB = "reevaluate_challenger"

# Run tags the platform writes and reads back.
TAG_PREFIX = "retrain_platform/"
TRIGGER_TAG = TAG_PREFIX + "trigger"  # drift, performance, schedule, serving, manual, ...
REASON_TAG = TAG_PREFIX + "reason"
DECISION_TAG = TAG_PREFIX + "decision_id"
# When the decision behind a retrain was taken, on the platform clock (simulated in a replay).
DECISION_DATE_TAG = TAG_PREFIX + "decision_date"
# A person's decision with `force`: the promotion cooldown gate does not apply to its retrain.
FORCE_TAG = TAG_PREFIX + "force"
MODEL_TAG = TAG_PREFIX + "model"
MODEL_VERSION_TAG = TAG_PREFIX + "model_version"
# The waiting challenger a re-evaluation is for: it fails rather than evaluate another candidate.
CHALLENGER_TAG = TAG_PREFIX + "challenger"
# Runs with this tag are limited to one at a time by the instance config: never two promotions.
PROMOTION_TAG_KEY = TAG_PREFIX + "promotion"
PROMOTION_TAGS = {PROMOTION_TAG_KEY: "exclusive"}
# Every alias move runs in this pool, limited to one slot by the instance config, so that a
# Materialize click outside the retrain job cannot promote beside a running retrain either.
PROMOTION_POOL = "promotion"

# Assets and checks that other parts look up by name.
EVALUATION_ASSET = "evaluation_report"
PRODUCTION_ASSET = "production_model"
GATES_CHECK = "gates_passed"  # evaluation_report's blocking check: a failure means "rejected by the gates"
