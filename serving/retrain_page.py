"""The Retrain page: one button that launches the retrain job, then follows its run."""

RETRAIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Retrain {model_name}</title>
<style>
 body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; color: #222; }}
 input {{ width: 22rem; padding: .4rem; }} button {{ padding: .5rem 1.2rem; font-size: 1rem; }}
 #status {{ margin-top: 1.5rem; white-space: pre-line; }}
</style></head>
<body>
<h1>Retrain {model_name}</h1>
<p>Serving version <b>{model_version}</b>. Retraining runs the Dagster job <code>{job}</code>: ingest,
validate, train, evaluate, and promote only if the new model passes every gate.</p>
<p><label>Admin token <input id="token" type="password" autocomplete="off"></label></p>
<button id="retrain">Retrain</button>
<div id="status"></div>
<script>
const statusBox = document.getElementById("status");
const terminal = new Set({terminal});
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
  if (!terminal.has(body.status)) setTimeout(() => poll(runId, url, headers), 2000);
}}
document.getElementById("retrain").onclick = async () => {{
  const headers = {{"Authorization": "Bearer " + document.getElementById("token").value}};
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
