"""The log formats and levels a config file or the command line may name (light: the CLI's parser
needs them before anything heavy is imported)."""

from typing import Final

LOG_FORMATS: Final = ("auto", "json", "console")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
