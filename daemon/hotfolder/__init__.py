"""hotfolder: watch folders, match rules, re-encode images with their metadata, atomically."""

import os
import sys

__version__ = "0.1.0"

# hotfolder keeps the bytecode of what it imports even where PYTHONDONTWRITEBYTECODE=1 is set: without
# it every process (the command, the fork server) compiled hotfolder's 12,500 lines again, 150 ms each
# here before the first job could start. It goes where Python puts it by default (the package's
# __pycache__, which pip fills for a regular install); a read-only install is left as it is.
sys.dont_write_bytecode = False

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
