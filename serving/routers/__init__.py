"""The routes of each concern, one module each; `add_*_routes(router, serving)` puts them on a
router (the app's own) with the shared `Serving` context in their closures:

- predictions: POST /predict, POST /predict/batch (the hot path)
- feedback: POST /feedback (labels for logged predictions)
- operations: /health, /health/live, /model-info, /admin/reload
- retrain: the Retrain page, POST /retrain and GET /retrain/status/{run_id} (through Dagster)
- docs: /docs and /redoc, their scripts served from an installed package, not a CDN (added last)
"""
