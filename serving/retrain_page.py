"""The Retrain page: one button that launches the retrain job, then follows its run to its outcome.

Without an admin token on the server, launching can only fail (503): the page says so up front
instead of offering a token field.
"""

import html
import json

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Retrain {model_name}</title>
<style>
 body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; color: #222; }}
 input {{ width: 22rem; padding: .4rem; }} button {{ padding: .5rem 1.2rem; font-size: 1rem; }}
 #status {{ margin-top: 1.5rem; white-space: pre-line; }}
 #outcome {{ margin-top: .8rem; padding: .6rem .8rem; border-left: .3rem solid #888; }}
 #outcome:empty {{ display: none; }}
 #outcome.promoted {{ border-color: #2a7; }} #outcome.rejected {{ border-color: #d90; }}
 #outcome.failed, #outcome.canceled {{ border-color: #c33; }}
 .notice {{ padding: .6rem .8rem; background: #fff4d6; border-left: .3rem solid #d90; }}
</style></head>
<body>
<h1>Retrain {model_name}</h1>
<p>Serving version <b>{model_version}</b>. Retraining runs the Dagster job <code>{job}</code>: ingest,
validate, train, evaluate, and promote only if the new model passes every gate.</p>
{controls}
<div id="status"></div>
<div id="outcome"></div>
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


def render_retrain_page(
    model_name: str, model_version: str | None, job: str, token_env: str | None, launch_url: str, status_url: str
) -> str:
    """The page; `token_env` names the unset variable that keeps it from launching, None when it can."""
    controls = LAUNCH if token_env is None else NO_TOKEN.format(env=html.escape(token_env))
    return PAGE.format(
        model_name=html.escape(model_name),
        model_version=html.escape(model_version or "none yet"),
        job=html.escape(job),
        controls=controls,
        launch_url=json.dumps(launch_url),
        status_url=json.dumps(status_url),
    )
