"""Workers ready before they are needed: forked from a fork server with one thread, at pool start."""

from __future__ import annotations

import os
import time
from multiprocessing import forkserver
from pathlib import Path

from conftest import pool_workers
from hotfolder.run.pool import Pool


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_workers_are_forked_at_pool_start_from_a_server_without_threads(tmp_path: Path) -> None:
    """The pool's workers exist before any job (forked from the fork server, never from this process
    with its threads); the server itself runs one thread, so forking it cannot deadlock."""
    pool = Pool(2, clock=time.monotonic, job_timeout=0, temp_roots=(tmp_path,))
    try:
        server = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
        deadline = time.monotonic() + 60
        while len(_children(server)) < 2:
            assert time.monotonic() < deadline, "the two workers were not started with the pool"
            time.sleep(0.01)
        assert len(list(Path(f"/proc/{server}/task").iterdir())) == 1
        assert sorted(pool_workers(os.getpid())) == sorted(_children(server))
        for worker in _children(server):
            status = Path(f"/proc/{worker}/status").read_text()
            assert "PPid:\t" + str(server) in status
    finally:
        pool.shutdown(abandon=False)
