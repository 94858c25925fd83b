"""hotfolder: watch folders, match rules, re-encode images with their metadata, atomically."""

__version__ = "0.1.0"
