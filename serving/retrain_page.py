"""The Retrain page: one button that launches the retrain job, then follows its run to its outcome,
above the model's health (AUC per day, the last alarms, the last decisions) for the person who
came because they suspect the model is underperforming.

Without an admin token on the server, launching can only fail (503): the page says so up front
instead of offering a token field. The health is plain server-rendered HTML: no script, no
external asset, so it reads offline and without a token.
"""

import html
import json
from datetime import UTC, datetime

from .schemas import ModelHealthSummary

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Retrain {model_name}</title>
<style>
 body {{ font-family: system-ui, sans-serif; max-width: 56rem; margin: 3rem auto; padding: 0 1rem; color: #222; }}
 input {{ width: 22rem; padding: .4rem; }} button {{ padding: .5rem 1.2rem; font-size: 1rem; }}
 #status {{ margin-top: 1.5rem; white-space: pre-line; }}
 #outcome {{ margin-top: .8rem; padding: .6rem .8rem; border-left: .3rem solid #888; }}
 #outcome:empty {{ display: none; }}
 #outcome.promoted {{ border-color: #2a7; }} #outcome.rejected, #outcome.waiting {{ border-color: #d90; }}
 #outcome.failed, #outcome.canceled {{ border-color: #c33; }}
 .notice {{ padding: .6rem .8rem; background: #fff4d6; border-left: .3rem solid #d90; }}
 #health {{ margin-top: 2.5rem; }} h3 {{ margin: 1.6rem 0 .4rem; font-size: 1.05rem; }}
 table {{ border-collapse: collapse; width: 100%; font-size: .9rem; }}
 th, td {{ text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #ddd; vertical-align: top; }}
 td.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
 td.time {{ white-space: nowrap; }}
 .flag {{ color: #a60; }} .alert {{ color: #c33; font-weight: bold; }} .muted {{ color: #666; }}
</style></head>
<body>
{models}<h1>Retrain {model_name}</h1>
<p>Serving version <b>{model_version}</b>. Retraining runs the Dagster job <code>{job}</code>: ingest,
validate, train, evaluate, and promote only if the new model passes every gate.</p>
{controls}
<div id="status"></div>
<div id="outcome"></div>
{health}
<script>
const statusBox = document.getElementById("status"), outcomeBox = document.getElementById("outcome");
const launchUrl = {launch_url}, statusUrl = {status_url};
function show(text, url) {{
  statusBox.textContent = text;
  if (url) {{ const a = document.createElement("a"); a.href = url; a.textContent = " Open in Dagster";
             a.target = "_blank"; statusBox.appendChild(a); }}
}}
async function poll(runId, url, headers) {{
  const r = await fetch(statusUrl.replace("RUN_ID", encodeURIComponent(runId)), {{headers}});
  const body = await r.json();
  if (!r.ok) {{ show("Status unavailable: " + (body.detail || r.status), url); return; }}
  show("Run " + runId + ": " + body.status + ".", url);
  if (body.outcome === "running") {{ setTimeout(() => poll(runId, url, headers), 2000); return; }}
  outcomeBox.className = body.outcome;
  outcomeBox.textContent = body.detail;
}}
const button = document.getElementById("retrain");
if (button) button.onclick = async () => {{
  const headers = {{"Authorization": "Bearer " + document.getElementById("token").value}};
  outcomeBox.textContent = "";
  show("Launching...");
  const r = await fetch(launchUrl, {{method: "POST", headers}});
  const body = await r.json();
  if (!r.ok) {{ show("Not launched: " + (body.detail || r.status)); return; }}
  show("Run " + body.run_id + ": " + body.status + ".", body.dagster_run_url);
  poll(body.run_id, body.dagster_run_url, headers);
}};
</script>
</body></html>
"""

LAUNCH = """<p><label>Admin token <input id="token" type="password" autocomplete="off"></label></p>
<button id="retrain">Retrain</button>"""

NO_TOKEN = """<p class="notice" id="no-token"><b>Launching is off on this server.</b> It needs an admin token,
and none is set: set <code>{env}</code> in serving's environment and restart it, then come back with
that token. Meanwhile the job can be launched from the Dagster UI.</p>"""


def _auc(value: float | None) -> str:
    return "&mdash;" if value is None else f"{value:.3f}"


def _time(moment: datetime | None) -> str:
    # Decisions keep the offset they were written with; the page shows UTC throughout.
    return "&mdash;" if moment is None else f"{moment.astimezone(UTC) if moment.tzinfo else moment:%Y-%m-%d %H:%M}"


def _td(content: str, css: str = "") -> str:
    """A cell of HTML the caller has escaped already."""
    return f'<td class="{css}">{content}</td>' if css else f"<td>{content}</td>"


def _table(table_id: str, headings: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{heading}</th>" for heading in headings)
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _days(health: ModelHealthSummary) -> str:
    if health.monitoring_log == "unreadable":
        return ('<p class="notice" id="health-log">The monitoring log could not be read '
                f"({html.escape(health.monitoring_error or 'unknown error')}).</p>")  # fmt: skip
    if health.monitoring_log == "empty":
        return ('<p class="notice" id="health-log">The monitoring log is empty: no drift check has run yet, so '
                "there are no figures to show. They appear once monitoring has checked some traffic.</p>")  # fmt: skip
    rows = []
    for day in health.days:
        estimate = _auc(day.estimated_auc)
        if day.estimated_auc_low is not None and day.estimated_auc_high is not None:
            interval = f"{_auc(day.estimated_auc_low)}&ndash;{_auc(day.estimated_auc_high)}"
            estimate += f' <span class="muted">({interval})</span>'
        level = html.escape(day.level)
        rows.append([_td(day.day.isoformat()), _td(html.escape(day.model_version)), _td(_auc(day.realised_auc), "num"),
                     _td(estimate, "num"), _td(_auc(day.promised_auc), "num"), _td(level, level)])  # fmt: skip
    note = (f'<p class="muted">Each day&rsquo;s newest check, from the newest {health.checks_read} checks. Realised '
            "AUC needs the late labels; the estimate comes from calibrated scores, with its interval; promised is "
            "the AUC that day&rsquo;s version had on its own holdout.</p>")  # fmt: skip
    headings = ["Day (UTC)", "Version", "Realised AUC", "Estimated AUC", "Promised AUC", "Drift"]
    return _table("health-days", headings, rows) + note


def _share(value: float | None) -> str:
    return "&mdash;" if value is None else f"{value:.0%}"


def _alarms(health: ModelHealthSummary) -> str:
    if health.monitoring_log != "ok":
        return '<p class="muted" id="health-alarms">None to show: no checks were read.</p>'
    if not health.alarms:
        return f'<p id="health-alarms">No alarm in the newest {health.checks_read} checks.</p>'
    rows = [[_td(_time(a.checked_at), "time"), _td(_time(a.event_time), "time"), _td(html.escape(a.model_version)),
             _td(a.level, a.level), _td(html.escape(", ".join(a.drifted_columns)) or "&mdash;"),
             _td(_share(a.drifted_importance), "num"), _td(_episode(a), "num")] for a in health.alarms]  # fmt: skip
    headings = ["Checked (UTC)", "Traffic up to", "Version", "Level", "Drifted columns", "Share of importance", "Episode"]
    note = ('<p class="muted">One alarm per episode: drift that persists is not raised again at every check. '
            "An episode ends after a quiet spell with no flagged check of its version.</p>")  # fmt: skip
    return _table("health-alarms", headings, rows) + note


def _episode(alarm) -> str:
    """How long the drift has lasted: flagged checks, until when, and which columns it touched."""
    others = [c for c in alarm.episode_columns if c not in alarm.drifted_columns]
    more = f"; also {html.escape(', '.join(others))}" if others else ""
    return f"{alarm.episode_checks} checks to {_time(alarm.episode_last)}{more}"


def _decisions(health: ModelHealthSummary) -> str:
    skipped = (f'<p class="muted">{health.decisions_unreadable} archived file(s) could not be read.</p>'
               if health.decisions_unreadable else "")  # fmt: skip
    if not health.decisions:
        return '<p id="health-decisions">No retraining decision taken yet.</p>' + skipped
    rows = [[_td(_time(d.decision_date), "time"), _td(html.escape(d.trigger)), _td("yes" if d.retrain else "no"),
             _td(html.escape(d.reason)), _td(html.escape(d.status or "") or "&mdash;")]
            for d in health.decisions]  # fmt: skip
    return _table("health-decisions", ["When (UTC)", "Trigger", "Retrain", "Reason", "Outcome"], rows) + skipped


def render_health(health: ModelHealthSummary, health_url: str) -> str:
    url = html.escape(health_url)
    return (f'<section id="health"><h2>Model health</h2>'
            f"<h3>AUC per day</h3>{_days(health)}<h3>Last alarms</h3>{_alarms(health)}"
            f"<h3>Last decisions</h3>{_decisions(health)}"
            f'<p class="muted">As JSON: <a href="{url}">{url}</a></p></section>')  # fmt: skip


def render_retrain_page(
    model_name: str, model_version: str | None, job: str, token_env: str | None, launch_url: str, status_url: str,
    health: str = "", models: dict[str, str | None] | None = None,
) -> str:  # fmt: skip
    """The page; `token_env` names the unset variable that keeps it from launching, None when it
    can; `health` is `render_health`'s section; `models`: every dataset served here, with its page's
    URL (None: this one), shown as links when there are several."""
    controls = LAUNCH if token_env is None else NO_TOKEN.format(env=html.escape(token_env))
    links = [f"<b>{html.escape(name)}</b>" if url is None else f'<a href="{html.escape(url)}">{html.escape(name)}</a>'
             for name, url in (models or {}).items()]  # fmt: skip
    return PAGE.format(
        models=f'<p class="muted" id="models">Models: {" · ".join(links)}</p>\n' if len(links) > 1 else "",
        model_name=html.escape(model_name),
        model_version=html.escape(model_version or "none yet"),
        job=html.escape(job),
        controls=controls,
        launch_url=json.dumps(launch_url),
        status_url=json.dumps(status_url),
        health=health,
    )
