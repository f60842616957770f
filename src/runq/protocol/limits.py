"""Bounds on everything a peer may send. Enforced while decoding, before the store."""

from __future__ import annotations

from typing import Final

PROTOCOL_VERSION: Final = 1
HEADER_SIZE: Final = 4
MAX_FRAME: Final = 1024 * 1024  # 1 MiB, the default; brokers may lower or raise it
MAX_BATCH: Final = 10_000  # jobs in one SUBMIT
MAX_LIST: Final = 1_000  # jobs in one LIST answer
MAX_ERROR_TEXT: Final = 8 * 1024  # characters of an attempt's error message
MAX_ERROR_CODE: Final = 100  # characters of an attempt's error code
MAX_TRACEBACK: Final = 64 * 1024  # characters of an attempt's traceback (its end is kept)
MAX_QUEUES: Final = 100
MAX_CONCURRENCY: Final = 10_000
