"""Dagster for serving: launch the retrain job and follow its run through Dagster's GraphQL API.

Plain HTTP on purpose: serving never imports Dagster (dagster-graphql's client would pull it in).
"""

from __future__ import annotations

import httpx

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

    async def status(self, run_id: str) -> str:
        result = (await self._query(RUN_STATUS, {"runId": run_id}))["runOrError"]
        if result["__typename"] == "Run":
            return result["status"]
        raise DagsterError(f"{result['__typename']}: {result.get('message', '')}")
