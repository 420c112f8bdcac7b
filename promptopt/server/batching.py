"""Server-side batching: concurrent requests share one model thread."""

import collections
import concurrent.futures
import threading


class MicroBatcher:
    """Runs queued jobs on one worker thread, several at a time when they fit.

    The model runs on a single thread (its compiled functions are not meant
    for concurrent calls, and on a CPU one call already uses every core).
    While it is busy, requests queue up; the next pass takes the oldest job
    and every queued job with the same `group_key` (same task, loss and
    prompt length) while the rows stay within `max_rows`, and runs them as
    one forward pass. This pays for small requests (a few rows each, where
    per-call overhead dominates); a job of `max_rows` rows or more always
    runs alone, because on this CPU larger batches are not faster per row
    (FIELD_NOTES). `max_rows=0` turns merging off, and a job whose
    `group_key` is None is never merged.

    Args:
        run_group: callable `list[job] -> list[result]`, one result per job;
            jobs have `.rows` and `.group_key`, and may have
            `.max_merged_rows`, which then replaces `max_rows` for the pass
            they start (generation jobs: requests for different prompts
            share one pass; see `GenerationJob.group_key`).
        max_rows: int, the most rows merged into one pass.
        max_wait_seconds: float, how long the worker waits for more jobs
            after the first arrives (0: take only what is already queued).

    Example:

    ```python
    batcher = MicroBatcher(engine.run, max_rows=32)
    result = batcher.submit(job).result()
    batcher.close()
    ```
    """

    def __init__(self, run_group, max_rows=32, max_wait_seconds=0.0):
        self.run_group = run_group
        self.max_rows = int(max_rows)
        self.max_wait_seconds = float(max_wait_seconds)
        self.passes = 0
        self.merged_jobs = 0
        self._queue = collections.deque()
        self._condition = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(
            target=self._work, name="promptopt-model", daemon=True
        )
        self._thread.start()

    def submit(self, job):
        """Queues `job`; returns a `concurrent.futures.Future` of its result."""
        future = concurrent.futures.Future()
        with self._condition:
            if self._closed:
                raise RuntimeError("MicroBatcher is closed; create a new one.")
            self._queue.append((job, future))
            self._condition.notify()
        return future

    def close(self):
        with self._condition:
            self._closed = True
            self._condition.notify()
        self._thread.join(timeout=5)

    def _take_group(self):
        first, future = self._queue.popleft()
        group = [(first, future)]
        rows = first.rows
        # A job may bring its own limit (generation merges more rows than
        # scoring; see ServerConfig.max_generation_rows).
        max_rows = getattr(first, "max_merged_rows", self.max_rows)
        kept = collections.deque()
        while self._queue:
            job, other = self._queue.popleft()
            if (
                first.group_key is not None
                and job.group_key == first.group_key
                and rows + job.rows <= max_rows
            ):
                group.append((job, other))
                rows += job.rows
            else:
                kept.append((job, other))
        self._queue.extendleft(reversed(kept))
        return group

    def _work(self):
        while True:
            with self._condition:
                while not self._queue and not self._closed:
                    self._condition.wait()
                if self._closed and not self._queue:
                    return
                if self.max_wait_seconds > 0:
                    self._condition.wait(self.max_wait_seconds)
                group = self._take_group()
            jobs = [job for job, _ in group]
            try:
                results = self.run_group(jobs)
            except Exception as error:  # noqa: BLE001 - handed to every caller
                for _, future in group:
                    future.set_exception(error)
                continue
            self.passes += 1
            self.merged_jobs += len(group) - 1
            for (_, future), result in zip(group, results):
                future.set_result(result)
