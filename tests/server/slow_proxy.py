"""An HTTP proxy that holds its first requests back, to make a server slow."""

import http.server
import threading
import time
import urllib.error
import urllib.request


class SlowProxy:
    """Forwards requests to `upstream`, sleeping `delay` s before the first `slow_requests`.

    The held-back request is still forwarded after the sleep (as a slow
    server would still finish its work), so a client that timed out and
    retried sends the same request twice.

    Example:

    ```python
    with SlowProxy(server.url, delay=2.0, slow_requests=1) as proxy:
        HTTPEvaluator(proxy.url, ..., timeout=0.5)
    ```
    """

    def __init__(self, upstream, delay, slow_requests):
        self.upstream = upstream
        self.delay = delay
        self.slow_requests = slow_requests
        self.received = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self):
                with proxy._lock:
                    proxy.received += 1
                    slow = proxy.received <= proxy.slow_requests
                if slow:
                    time.sleep(proxy.delay)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                request = urllib.request.Request(
                    proxy.upstream + self.path, data=body, headers=headers, method=self.command
                )
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        status, data = response.status, response.read()
                except urllib.error.HTTPError as error:
                    status, data = error.code, error.read()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

            do_GET = _forward
            do_POST = _forward

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
