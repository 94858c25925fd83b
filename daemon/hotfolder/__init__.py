"""hotfolder: watch folders, match rules, re-encode images with their metadata, atomically."""

import os
import sys

__version__ = "0.1.0"

# orig_argv: multiprocessing's prepare() replaces sys.argv with the parent's before this runs.
if sys.platform == "linux" and "--multiprocessing-fork" in getattr(sys, "orig_argv", sys.argv):
    # A worker of a daemon that can be killed with -9: die with it. The pool's initializer runs
    # only after every import, and a kill during that start-up left orphans holding pipes open,
    # so this is done first, when multiprocessing imports the parent's main module.
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before the line above: nothing left to work for
        os._exit(1)
