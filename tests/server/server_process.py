"""Starts `promptopt serve` in a subprocess on 127.0.0.1, for the tests."""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save_tiny_preset(directory):
    """Saves the tiny GPT-2 backbone and tokenizer as a keras-hub preset."""
    from tests.tiny_models import tiny_gpt2

    backbone, tokenizer = tiny_gpt2()
    backbone.save_to_preset(str(directory))
    tokenizer.save_to_preset(str(directory))
    return str(directory)


class ServerProcess:
    """`promptopt serve --model <preset>` as a child process.

    Args:
        model: preset folder (or alias).
        port: int; a free one if None.
        log_file: the server's request log.
        extra: more CLI flags, e.g. ("--token", "s3cret").

    Example:

    ```python
    server = ServerProcess(preset, log_file=tmp / "log.jsonl").start()
    server.url  # "http://127.0.0.1:<port>"
    server.stop()
    ```
    """

    def __init__(self, model, port=None, log_file=None, extra=(), token=None):
        self.model = str(model)
        self.port = port or free_port()
        self.log_file = None if log_file is None else str(log_file)
        self.extra = list(extra)
        self.token = token
        self.process = None
        self.output_path = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=180):
        command = [
            sys.executable, "-m", "promptopt.cli.main", "serve", "--model", self.model,
            "--host", "127.0.0.1", "--port", str(self.port), "--quiet", *self.extra,
        ]
        if self.log_file is not None:
            command += ["--log-file", self.log_file]
        if self.token is not None:
            command += ["--token", self.token]
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
        self.output_path = f"{self.log_file or '/tmp/promptopt-server'}.{self.port}.out"
        self._output = open(self.output_path, "ab")
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=self._output, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The server exited early:\n{self.output()}")
            try:
                self.get("/openapi.json", timeout=2)
                return self
            except OSError:
                time.sleep(0.3)
        self.kill()
        raise RuntimeError(f"The server did not start in {timeout} s:\n{self.output()}")

    def output(self):
        with open(self.output_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-4000:]

    def get(self, path, timeout=10):
        request = urllib.request.Request(self.url + path)
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        """SIGKILL: no clean shutdown, as in a crash."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        self._output.close()

    def stop(self):
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._output.close()


# A toy sentiment task the tiny model can be tuned on.
POSITIVE = ["a great film", "great fun", "truly great", "great acting", "so great", "great story"]
NEGATIVE = ["a terrible film", "terrible fun", "truly terrible", "terrible acting", "so terrible", "terrible story"]
TEXTS = [f"{t}. It was" for t in POSITIVE + NEGATIVE]
LABELS = [1] * len(POSITIVE) + [0] * len(NEGATIVE)
CLASSES = ["0", "1"]
LABEL_WORDS = {"0": [" terrible"], "1": [" great"]}
PHRASES = [" a", " film", " It", " was", " good", " bad", " so", " fun", " truly", " story"]


def local_model(preset, prompt_length=3):
    """The served model, loaded in this process, as a `PromptedModel`."""
    from promptopt import PromptedModel
    from promptopt import Verbalizer
    from promptopt import VerbalizerClassification
    from promptopt.hub import load_language_model

    loaded = load_language_model(preset)
    task = VerbalizerClassification(Verbalizer(CLASSES, LABEL_WORDS, loaded.tokenizer))
    return PromptedModel(
        loaded.backbone, task, prompt_length=prompt_length, tokenizer=loaded.tokenizer
    )
