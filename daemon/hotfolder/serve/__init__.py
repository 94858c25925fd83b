"""`hotfolder serve`: a status page, Prometheus metrics and notifications, beside the daemon, read-only."""
