"""Imported by the fork server (prefork.py), once: every module a job runs, Pillow's plugins and the
HEIF opener, so a worker forked from it starts its first job at once. Nothing here starts a thread."""

from PIL import Image

import hotfolder.cli
import hotfolder.run.job  # noqa: F401 - the whole job: decide, render, staging
from hotfolder.decide.sniff import register_codecs

Image.init()  # every plugin now, not at the first file of a kind (~40 ms here)
register_codecs()
