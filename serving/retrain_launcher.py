"""Dagster for serving: launch the retrain job and follow its run through Dagster's GraphQL API.

Plain HTTP on purpose: serving never imports Dagster (dagster-graphql's client would pull it in).
"""

from __future__ import annotations

import httpx

from .run_outcome import RunOutcome, finished, running

LAUNCH_RUN = """
mutation LaunchRetrain($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""

RUN_STATUS = """
query RetrainRunStatus($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status }
    ... on Error { message }
  }
}
"""

# What a finished run did (see run_outcome.py): the gates check, the promotion, the failures.
RUN_EVENTS = """
query RetrainRunEvents($runId: ID!, $cursor: String) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      eventConnection(afterCursor: $cursor, limit: 1000) {
        cursor
        hasMore
        events {
          __typename
          ... on MaterializationEvent {
            assetKey { path }
            metadataEntries { label ... on TextMetadataEntry { text } ... on IntMetadataEntry { intValue } }
          }
          ... on AssetCheckEvaluationEvent {
            evaluation {
              checkName success severity description
              assetKey { path }
              metadataEntries { label ... on JsonMetadataEntry { jsonString } }
            }
          }
          ... on ExecutionStepFailureEvent { stepKey message error { message causes { message } } }
          ... on RunFailureEvent { message }
        }
      }
    }
    ... on Error { message }
  }
}
"""

TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


class DagsterError(RuntimeError):
    """Dagster answered, but not with a run (unknown job, bad config, unknown run id)."""


class DagsterUnreachable(RuntimeError):
    """No answer from the Dagster webserver."""


class DagsterClient:
    def __init__(self, url: str, location: str, repository: str, timeout: float = 15.0):
        self.url = url.rstrip("/")
        self.location = location
        self.repository = repository
        self.timeout = timeout

    def run_url(self, run_id: str) -> str:
        return f"{self.url}/runs/{run_id}"

    async def _query(self, query: str, variables: dict) -> dict:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(f"{self.url}/graphql", json={"query": query, "variables": variables})
        except httpx.HTTPError as err:
            raise DagsterUnreachable(f"Dagster at {self.url} did not answer: {type(err).__name__}: {err}") from err
        if response.status_code != 200:
            raise DagsterError(f"Dagster at {self.url} answered HTTP {response.status_code}: {response.text[:300]}")
        body = response.json()
        if body.get("errors"):
            raise DagsterError("; ".join(error.get("message", str(error)) for error in body["errors"]))
        return body["data"]

    async def launch(self, job: str, tags: dict[str, str]) -> tuple[str, str]:
        """Launch `job` with its default config; returns (run id, status)."""
        params = {
            "selector": {"repositoryLocationName": self.location, "repositoryName": self.repository, "jobName": job},
            "runConfigData": {},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        result = (await self._query(LAUNCH_RUN, {"executionParams": params}))["launchRun"]
        if result["__typename"] == "LaunchRunSuccess":
            return result["run"]["runId"], result["run"]["status"]
        details = result.get("message") or "; ".join(e["message"] for e in result.get("errors", []))
        raise DagsterError(f"{result['__typename']}: {details}")

    async def _run(self, query: str, variables: dict) -> dict:
        result = (await self._query(query, variables))["runOrError"]
        if result["__typename"] == "Run":
            return result
        raise DagsterError(f"{result['__typename']}: {result.get('message', '')}")

    async def run(self, run_id: str) -> tuple[str, RunOutcome]:
        """The run's status and what it did; its events are read only once it has finished."""
        status = (await self._run(RUN_STATUS, {"runId": run_id}))["status"]
        if status not in TERMINAL_STATUSES:
            return status, running(status)
        events, cursor = [], None
        while True:
            page = (await self._run(RUN_EVENTS, {"runId": run_id, "cursor": cursor}))["eventConnection"]
            events += page["events"]
            if not page["hasMore"]:
                return status, finished(status, events)
            cursor = page["cursor"]
