"""Starts `promptopt serve` as a child process for the API experiments."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model, log_file, output_file, extra=(), timeout=600):
    """Returns `(process, url)` once `/openapi.json` answers."""
    port = free_port()
    command = [sys.executable, "-m", "promptopt.cli.main", "serve", "--model", model,
               "--port", str(port), "--log-file", log_file, "--quiet", *extra]
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    output = open(output_file, "ab")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The server exited; see {output_file}")
        try:
            urllib.request.urlopen(url + "/openapi.json", timeout=2).read()
            return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"The server did not start in {timeout} s; see {output_file}")
