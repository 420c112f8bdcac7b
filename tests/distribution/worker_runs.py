"""Starts `mesh_worker.py` processes and loads what they saved."""

import os
import socket
import subprocess
import sys

import numpy as np

WORKER = os.path.join(os.path.dirname(__file__), "mesh_worker.py")
TIMEOUT = 900  # seconds; the slowest worker takes about 2 minutes of CPU


def worker_env(devices):
    env = dict(os.environ)
    env["KERAS_BACKEND"] = "jax"
    # Read when JAX is imported, which is why this needs a process of its own.
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env.pop("KERAS_DISTRIBUTION_NUM_PROCESSES", None)
    return env


def run_mesh_worker(out_dir):
    """The 4-device scenarios' arrays: one device and mesh side by side."""
    out = os.path.join(out_dir, "mesh.npz")
    _check(subprocess.run([sys.executable, WORKER, "mesh", out], env=worker_env(4),
                          capture_output=True, text=True, timeout=TIMEOUT))
    return dict(np.load(out))


def run_two_processes(out_dir):
    """Each of the two processes' arrays (2 devices each, one 4-device mesh)."""
    port = _free_port()
    outs = [os.path.join(out_dir, f"process{i}.npz") for i in range(2)]
    workers = [
        subprocess.Popen([sys.executable, WORKER, "process", str(i), str(port), outs[i]],
                         env=worker_env(2), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
        for i in range(2)
    ]
    try:
        for worker in workers:
            output, _ = worker.communicate(timeout=TIMEOUT)
            _check(subprocess.CompletedProcess(worker.args, worker.returncode, output, ""))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    return [dict(np.load(out)) for out in outs]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check(completed):
    if completed.returncode != 0:
        tail = (completed.stdout + completed.stderr)[-4000:]
        raise AssertionError(f"{' '.join(completed.args[1:3])} worker failed:\n{tail}")
