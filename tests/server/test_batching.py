import dataclasses
import threading
import time

import pytest

from promptopt.server import MicroBatcher


@dataclasses.dataclass
class Job:
    rows: int
    group_key: object = "a"


class RecordingRunner:
    """run_group that records its groups; the first call blocks until released."""

    def __init__(self):
        self.groups = []
        self.release = threading.Event()

    def __call__(self, jobs):
        if not self.groups:
            self.release.wait(5)
        self.groups.append([id(j) for j in jobs])
        return [job.rows * 10 for job in jobs]


def test_jobs_queued_while_busy_share_one_pass_within_the_row_limit():
    runner = RecordingRunner()
    batcher = MicroBatcher(runner, max_rows=8)
    first = batcher.submit(Job(2))
    time.sleep(0.1)  # the worker is now blocked on the first job
    queued = [Job(3), Job(3), Job(3), Job(1, group_key="b"), Job(2)]
    futures = [batcher.submit(j) for j in queued]
    runner.release.set()
    assert first.result(5) == 20
    assert [f.result(5) for f in futures] == [30, 30, 30, 10, 20]
    batcher.close()
    ids = {id(j): i for i, j in enumerate(queued)}
    groups = [[ids[i] for i in g] for g in runner.groups[1:]]
    # 3 + 3 + 2 rows fit in 8; the third 3-row job and the "b" job wait.
    assert groups == [[0, 1, 4], [2], [3]]
    assert batcher.passes == 4 and batcher.merged_jobs == 2


@pytest.mark.parametrize("max_rows, key", [(0, "a"), (64, None)])
def test_no_merging_when_turned_off_or_job_is_not_batchable(max_rows, key):
    runner = RecordingRunner()
    batcher = MicroBatcher(runner, max_rows=max_rows)
    batcher.submit(Job(1, key))
    time.sleep(0.1)
    futures = [batcher.submit(Job(1, key)) for _ in range(3)]
    runner.release.set()
    [f.result(5) for f in futures]
    batcher.close()
    assert [len(g) for g in runner.groups] == [1, 1, 1, 1]


def test_an_error_reaches_every_job_of_the_pass_and_the_worker_survives():
    calls = []

    def run_group(jobs):
        calls.append(len(jobs))
        if len(calls) == 1:
            raise ValueError("bad label word")
        return [0 for _ in jobs]

    batcher = MicroBatcher(run_group)
    with pytest.raises(ValueError, match="bad label word"):
        batcher.submit(Job(1)).result(5)
    assert batcher.submit(Job(1)).result(5) == 0
    batcher.close()
