"""Keeps secrets out of logs, records and error messages.

Every secret value the configuration resolves (passwords, client secrets, tokens,
S3 keys) is registered here, and every text that leaves the process for a human
(log records, run records, CLI error output) passes through :func:`redact`.
Redacting by value rather than by field name also catches a secret that leaks
through an unexpected path, such as a server echoing it back in an error body.
"""

from __future__ import annotations

import logging
import threading

MASK = "***"
_MIN_LEN = 4  # shorter values would mask ordinary words; real secrets are longer

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that it is masked wherever it would be shown."""
    if value and len(value) >= _MIN_LEN:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``***``."""
    if not _secrets or not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Logging filter that masks registered secrets in the formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.exc_text = redact(
                logging.Formatter().formatException(record.exc_info)
            )
            record.exc_info = (type(exc), exc, None)
        return True


_factory_installed = False


def install_log_redaction() -> None:
    """Redact every log record of this process when it is created.

    A record factory rather than a handler filter, because libraries (Luigi, urllib3,
    botocore) add handlers of their own that a filter on ours would not cover.
    """
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _secrets:
            message = record.getMessage()
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, None
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True
