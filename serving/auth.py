"""Bearer tokens for the endpoints that change something: admin, and labelling.

The tokens are read from the environment per request (never cached in Settings), so a rotated
token takes effect at once.
"""

from __future__ import annotations

import os
import secrets

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ADMIN_TOKEN_ENV = "RETRAIN_ADMIN_TOKEN"
FEEDBACK_TOKEN_ENV = "RETRAIN_FEEDBACK_TOKEN"


def configured_tokens(*env_names: str) -> list[str]:
    return [os.environ[name] for name in env_names if os.environ.get(name)]


def token_guard(*env_names: str):
    """A dependency that wants `Authorization: Bearer <token>` matching one of the env tokens."""
    bearer = HTTPBearer(auto_error=False, description=f"the value of {' or '.join(env_names)}")

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        tokens = configured_tokens(*env_names)
        if not tokens:
            raise HTTPException(503, f"admin token not configured: set {env_names[0]} on the server")
        if credentials is None:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        given = credentials.credentials.encode()
        if not any(secrets.compare_digest(given, token.encode()) for token in tokens):
            raise HTTPException(403, "invalid token")

    return check


ADMIN = Depends(token_guard(ADMIN_TOKEN_ENV))
LABELLER = Depends(token_guard(ADMIN_TOKEN_ENV, FEEDBACK_TOKEN_ENV))
