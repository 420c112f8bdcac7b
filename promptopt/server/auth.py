"""Bearer-token authentication, as a FastAPI dependency of every route."""

import secrets

from fastapi import Depends
from fastapi import HTTPException
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security import HTTPBearer

from promptopt.server.server_state import server_state

# auto_error=False: a missing header reaches `authorize`, which answers 401
# with the fix, or lets the request through when the server has no token.
bearer = HTTPBearer(auto_error=False)


def authorize(credentials: HTTPAuthorizationCredentials = Depends(bearer),
              state=Depends(server_state)):
    """Raises 401 unless the request carries the server's token (if it has one)."""
    token = state.config.token
    if token is None:
        return
    if credentials is None:
        raise HTTPException(
            401,
            "Missing bearer token. Send the header 'Authorization: Bearer <token>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Constant-time comparison, so that response times do not leak the token.
    if not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
        raise HTTPException(
            401,
            "Wrong bearer token. Send the token the server was started with.",
            headers={"WWW-Authenticate": "Bearer"},
        )
