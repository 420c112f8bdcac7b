"""A small JSON-over-HTTP client with timeouts and retries with backoff."""

import json
import socket
import time
import urllib.error
import urllib.request

from promptopt.wire.names import IDEMPOTENCY_HEADER

RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)


class APIRequestError(ValueError):
    """The server refused the request (a 4xx); retrying would not help."""

    def __init__(self, status, message):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class APIUnavailableError(ConnectionError):
    """The server did not answer within the retries allowed."""


class JSONHTTPClient:
    """POSTs and GETs JSON with a timeout, retrying failures with backoff.

    Connection errors, timeouts, and statuses 408/429/5xx are retried up to
    `max_retries` times, waiting `backoff_seconds * 2**attempt` (at most
    `max_backoff_seconds`) in between; other 4xx statuses raise
    `APIRequestError` at once with the server's message. Pass an
    `idempotency_key` with every paid request, so that a retry of a request
    whose reply was lost is answered from the server's log, not paid twice.
    Thread-safe: each request opens its own connection.

    Args:
        base_url: str, e.g. "http://127.0.0.1:8000".
        token: str or None, sent as `Authorization: Bearer <token>`.
        timeout: float, seconds to wait for each attempt's reply.
        max_retries: int, retries after the first attempt.
        backoff_seconds: float, the first wait between attempts.
        max_backoff_seconds: float, the longest wait.

    Example:

    ```python
    client = JSONHTTPClient("http://127.0.0.1:8000", token="s3cret")
    reply, attempts = client.post("/v1/score", body, idempotency_key="k1")
    ```
    """

    def __init__(
        self,
        base_url,
        token=None,
        timeout=60.0,
        max_retries=5,
        backoff_seconds=0.5,
        max_backoff_seconds=8.0,
    ):
        if not str(base_url).startswith(("http://", "https://")):
            raise ValueError(
                f"base_url must start with http:// or https://, got {base_url!r}. "
                "Pass e.g. 'http://127.0.0.1:8000'."
            )
        if timeout <= 0 or max_retries < 0 or backoff_seconds < 0:
            raise ValueError(
                "timeout must be positive and max_retries, backoff_seconds "
                f"non-negative; got timeout={timeout}, max_retries={max_retries}, "
                f"backoff_seconds={backoff_seconds}."
            )
        self.base_url = str(base_url).rstrip("/")
        self.token = token
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff_seconds = float(backoff_seconds)
        self.max_backoff_seconds = float(max_backoff_seconds)

    def get(self, path):
        """Returns `(reply dict, attempts)`."""
        return self._request("GET", path, None, None)

    def post(self, path, body, idempotency_key=None):
        """Returns `(reply dict, attempts)` for a JSON `body`."""
        return self._request("POST", path, json.dumps(body).encode("utf-8"), idempotency_key)

    def _request(self, method, path, data, idempotency_key):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        if idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        last_error = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(
                    min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)
                )
            request = urllib.request.Request(
                self.base_url + path, data=data, headers=headers, method=method
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode("utf-8")), attempt + 1
            except urllib.error.HTTPError as error:
                message = _error_message(error)
                if error.code not in RETRYABLE_STATUS:
                    raise APIRequestError(error.code, message) from None
                last_error = f"HTTP {error.code}: {message}"
            except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as error:
                last_error = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
        raise APIUnavailableError(
            f"{method} {self.base_url}{path} failed after {self.max_retries + 1} "
            f"attempts (last: {last_error}). Check that the server is up, or "
            "raise timeout / max_retries."
        )


def _error_message(error):
    try:
        detail = json.loads(error.read().decode("utf-8")).get("detail")
    except (ValueError, AttributeError, OSError):
        return error.reason
    if isinstance(detail, list):  # pydantic validation errors
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail
        )
    return str(detail)
