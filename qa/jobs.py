"""Background jobs with progress: one worker, so one writer at a time, while questions go on.

Uploads are indexed and evaluations run here instead of inside a web request: a request only
queues the job and returns; the UI polls ``Jobs.get`` for the progress bar. Jobs run one
after another on a single thread, which is the "one writer at a time" rule for the documents
folder and the index (the folder watcher's rebuild shares the pipeline's rebuild lock).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import QAError

log = logging.getLogger(__name__)

#: jobs waiting beyond this are refused ("try again later") instead of piling up
MAX_WAITING = 8
#: finished jobs remembered for their owners to read the outcome
KEEP_FINISHED = 100

Report = Callable[[float, str], None]


class JobRefused(QAError):
    pass


@dataclass
class Job:
    id: str
    kind: str
    user: str
    title: str
    state: str = "queued"  # queued | running | done | failed
    progress: float = 0.0
    message: str = "等待中 (queued)"
    result: Any = None
    created: float = field(default_factory=time.time)
    finished: float | None = None

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")


class Jobs:
    def __init__(self, max_waiting: int = MAX_WAITING) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._max_waiting = max_waiting
        self._worker = threading.Thread(target=self._run, name="qa-jobs", daemon=True)
        self._worker.start()

    def submit(self, kind: str, user: str, title: str, work: Callable[[Report], Any]) -> Job:
        """Queue ``work(report)``; ``report(fraction, message)`` moves the job's progress bar.

        ``work`` returns the job's result, or raises QAError, whose message becomes the
        job's outcome. Raises JobRefused when too many jobs are waiting.
        """
        with self._lock:
            waiting = sum(1 for j in self._jobs.values() if j.state == "queued")
            if waiting >= self._max_waiting:
                raise JobRefused(f"{waiting} jobs are already waiting; try again when they have finished")
            job = Job(id=f"{kind}-{next(self._ids)}", kind=kind, user=user, title=title)
            self._jobs[job.id] = job
            self._forget_old()
        self._queue.put((job, work))
        return job

    def get(self, job_id: str | None) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id or "")

    def list(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job has finished (for the CLI and tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job is None or not job.active:
                return job
            if deadline is not None and time.monotonic() > deadline:
                return job
            time.sleep(0.05)

    def _forget_old(self) -> None:
        done = [j for j in self._jobs.values() if not j.active]
        for job in sorted(done, key=lambda j: j.created)[:max(0, len(done) - KEEP_FINISHED)]:
            del self._jobs[job.id]

    def _run(self) -> None:
        while True:
            job, work = self._queue.get()

            def report(fraction: float, message: str, job: Job = job) -> None:
                job.progress, job.message = max(0.0, min(1.0, fraction)), message

            job.state, job.message = "running", "开始 (started)"
            try:
                job.result = work(report)
                job.state, job.progress = "done", 1.0
                if job.message == "开始 (started)":
                    job.message = "完成 (done)"
            except QAError as exc:
                job.state, job.message = "failed", str(exc)
            except Exception as exc:  # the worker must survive any one job
                log.exception("job %s failed", job.id)
                job.state, job.message = "failed", f"internal error ({type(exc).__name__}); see the server log"
            finally:
                job.finished = time.time()
