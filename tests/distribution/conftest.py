"""The worker runs the distribution tests share (each a few minutes of CPU)."""

import pytest

from tests.distribution.worker_runs import run_mesh_worker
from tests.distribution.worker_runs import run_two_processes


@pytest.fixture(scope="session")
def mesh_results(tmp_path_factory):
    """`mesh_worker.py mesh`: one device and a 4-device mesh, side by side."""
    return run_mesh_worker(str(tmp_path_factory.mktemp("mesh")))


@pytest.fixture(scope="session")
def process_results(tmp_path_factory):
    """`mesh_worker.py process`: the two processes' arrays."""
    return run_two_processes(str(tmp_path_factory.mktemp("processes")))
