"""The log formats and levels a config file or the command line may name (light: the CLI's parser
needs them before anything heavy is imported: not even typing, ~3 ms before the fork server starts)."""

LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
