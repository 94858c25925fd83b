"""`python -m hotfolder`."""

import sys

from hotfolder.cli import main

if __name__ == "__main__":
    sys.exit(main())
