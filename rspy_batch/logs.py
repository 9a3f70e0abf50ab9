"""Logging set-up for the command line: readable on a terminal, plain in cron mail."""

from __future__ import annotations

import logging
import sys

from rspy_batch.redact import install_log_redaction


def setup_logging(verbose: int = 0) -> None:
    level = logging.WARNING - 10 * min(verbose, 2) if verbose else logging.INFO
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=False)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Luigi and HTTP libraries are chatty at INFO; keep them one level down.
    for name in ("luigi", "luigi-interface", "urllib3", "botocore", "s3fs", "stac_geoparquet"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    install_log_redaction()
