"""Asset checks: thin wrappers around retrain_platform.core.validation."""
