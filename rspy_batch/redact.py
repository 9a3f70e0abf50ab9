"""Keeps secrets out of logs, records and error messages.

Every secret value the configuration resolves (passwords, client secrets, tokens,
S3 keys) is registered here, and every text that leaves the process for a human
(log records, run records, CLI error output) passes through :func:`redact`.
Redacting by value rather than by field name also catches a secret that leaks
through an unexpected path, such as a server echoing it back in an error body.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
from urllib.parse import quote, quote_plus

MASK = "***"
_MIN_LEN = 4  # shorter values would mask ordinary words; real secrets are longer

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that it is masked wherever it would be shown."""
    if value and len(value) >= _MIN_LEN:
        with _lock:
            _secrets.update(_encoded_forms(value))


def _encoded_forms(value: str) -> set[str]:
    """The secret as it reads once a URL, a form, JSON or a Python repr carries it: a
    session token in a presigned URL, a password in a logged dict, is still the secret."""
    return {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1], repr(value)[1:-1]}


def mask_userinfo(text: str) -> str:
    """``text`` with the ``user:password@`` part of any URL in it masked (for messages that
    name a URL the configuration refused)."""
    return _USERINFO.sub("//***@", text)


_USERINFO = re.compile(r"//[^/?#@\s]*@")


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
    """Redact every log record of this process when it is created, and the traceback of
    an exception nobody caught.

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
            if record.exc_info and record.exc_info[1] is not None:
                # Handlers format a record's traceback from exc_text when it is set; the
                # exception's own text (a server's error body) may quote a secret.
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
    sys.excepthook = _redacting_excepthook
    _factory_installed = True


def _redacting_excepthook(exc_type: type[BaseException], exc: BaseException,
                          tb: object) -> None:
    """An uncaught exception's traceback, printed redacted (as Python would print it)."""
    sys.stderr.write(redact("".join(traceback.format_exception(exc_type, exc, tb))))
