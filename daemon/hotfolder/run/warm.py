"""Imported by the fork server (prefork.py), once: every module a job runs, Pillow's plugins and the
HEIF opener, so a worker forked from it starts its first job at once. Nothing here starts a thread."""

import atexit
import ctypes
import os
import signal

import hotfolder.run.job  # noqa: F401 - the whole job: decide, render, staging
from hotfolder.decide.sniff import register_codecs

# The server dies with the daemon (even kill -9), and its workers with it (worker.init). Without this
# it outlived a killed daemon: its workers hold the write end of its "alive" pipe, so it never saw EOF.
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
# The daemon died before the line above (its orphan was taken by pid 1 or a subreaper): nothing left to
# serve. Judged against the daemon's own pid: in a container without an init the daemon IS pid 1.
if str(os.getppid()) != os.environ.get("HOTFOLDER_FORKSERVER_PARENT", str(os.getppid())):
    os._exit(1)
SERVER: int = os.getpid()  # the parent every worker forked from here must still have (worker.init)

register_codecs()  # the allowlist's Pillow plugins and the HEIF opener, not at a worker's first file

# The server ends when the daemon closes its pipe, by SystemExit: the interpreter's teardown of the
# ~900 modules imported above took 35-40 ms of every one-shot `process` (which waits for the server, so
# that its workers' CPU time reaches whoever waits for the command). It holds nothing to flush or close;
# its workers leave by os._exit and never run this.
atexit.register(os._exit, 0)
