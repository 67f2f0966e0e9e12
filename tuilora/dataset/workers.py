"""Probe every image (and read its caption) on all cores, in job order.

The work on one image is a few syscalls around some Python and, in the pixel pass, one
decode: CPU-bound and mostly under the GIL, so threads do not help (measured: 4 threads
made a 10,000-small-image scan 3× slower). A process pool does, but starting one costs
tens of milliseconds, so the first chunk of images runs in this process and is timed; the
pool starts only when the rest is expected to take longer than ``POOL_WORTH_S``. Results
come back in job order, so the report does not depend on which worker finished first.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext
from typing import Final

from PIL import Image

from tuilora.dataset.captions import MISSING, CaptionRead, read_caption
from tuilora.dataset.images import ImageProbe, probe_image

# Images per task: big enough that a task's cost (pickling, a pipe round trip) is small
# next to the work, small enough to keep both cores busy to the end and report progress.
CHUNK: Final = 32
# The pool pays off when the remaining work, estimated from the first chunk, exceeds this:
# forking the workers and passing jobs and results through pipes costs 0.1-0.2 s for
# 10,000 images, so a warm check (headers only, ~0.3 s of work) stays in this process.
POOL_WORTH_S: Final = 0.5
MAX_WORKERS: Final = 8
Progress = Callable[[int, int], None]
# (image path, caption path if the folder listing had one, the cached probe if any)
Job = tuple[str, str | None, ImageProbe | None]
Result = tuple[ImageProbe, CaptionRead]


def default_workers() -> int:
    """One process per core (at most ``MAX_WORKERS``)."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def run_chunk(jobs: Sequence[Job], near_duplicates: bool) -> list[Result]:
    return [
        (
            probe_image(image, near_duplicates=near_duplicates, cached=cached),
            MISSING if caption is None else read_caption(caption),
        )
        for image, caption, cached in jobs
    ]


def _run_chunk_remote(
    jobs: Sequence[Job], near_duplicates: bool
) -> list[tuple[ImageProbe | None, CaptionRead]]:
    """``run_chunk`` in a worker: a probe the cache still vouches for comes back as None,
    so it is not sent through the pipe a second time."""
    return [
        (None if probe is job[2] else probe, caption)
        for job, (probe, caption) in zip(jobs, run_chunk(jobs, near_duplicates), strict=True)
    ]


def _worker_init() -> None:
    # Ctrl+C reaches the whole process group: the parent stops the scan, the workers
    # must not each print a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)


def _only_thread() -> bool:
    """True when this process runs one thread (native threads included), which is when
    fork() is safe: a lock held by another thread would stay locked in the child."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return threading.active_count() == 1 and sys.platform == "linux"


def _context() -> BaseContext:
    """fork (a few milliseconds) where it is safe, else forkserver or spawn (a fresh
    interpreter that imports the scanner: slower to start, safe under threads, e.g. the
    wizard scanning in a worker thread)."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and sys.platform == "linux" and _only_thread():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _with_cached(
    jobs: Sequence[Job], results: list[tuple[ImageProbe | None, CaptionRead]]
) -> list[Result]:
    """Put the cached probes back where a worker returned None for them."""
    merged: list[Result] = []
    for (_, _, cached), (probe, caption) in zip(jobs, results, strict=True):
        found = probe if probe is not None else cached
        if found is None:  # pragma: no cover - a worker returns None only for a cached probe
            raise RuntimeError("a worker lost a probe")
        merged.append((found, caption))
    return merged


@contextlib.contextmanager
def _quiet_bomb_warnings() -> Iterator[None]:
    """Silence Pillow's DecompressionBombWarning (the audit reports such images itself).

    The warnings filter is process-wide and ``catch_warnings`` is not thread-safe, so this
    is done only when the scan runs in the main thread (the CLI); a UI running the scan in
    a worker thread may see the warning once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def probe_all(
    jobs: Sequence[Job], near_duplicates: bool, workers: int, progress: Progress | None
) -> list[Result]:
    """Probe every job, in order; ``progress(done, total)`` after each chunk."""
    chunks = [jobs[start : start + CHUNK] for start in range(0, len(jobs), CHUNK)]
    results: list[Result] = []

    def done(part: list[Result]) -> None:
        results.extend(part)
        if progress is not None:
            progress(len(results), len(jobs))

    with _quiet_bomb_warnings():
        start = time.perf_counter()
        if chunks:
            done(run_chunk(chunks[0], near_duplicates))
        per_image = (time.perf_counter() - start) / max(1, len(results))
        rest = chunks[1:]
        expected = per_image * (len(jobs) - len(results))
        if workers <= 1 or not rest or expected < POOL_WORTH_S:
            for chunk in rest:
                done(run_chunk(chunk, near_duplicates))
            return results
        pool = ProcessPoolExecutor(
            max_workers=min(workers, len(rest)), mp_context=_context(), initializer=_worker_init
        )
        try:
            futures = [pool.submit(_run_chunk_remote, chunk, near_duplicates) for chunk in rest]
            for chunk, future in zip(rest, futures, strict=True):
                done(_with_cached(chunk, future.result()))
        finally:
            # on Ctrl+C, drop the queued chunks instead of finishing a 50,000-image scan
            pool.shutdown(wait=True, cancel_futures=True)
    return results
