"""retrain_platform: keeps a production ML model good.

This package root stays free of Dagster imports so that serving can use the shared parts
(`datasets`, `core`, `registry`, `store`, `settings`) without pulling in the orchestrator.
"""
