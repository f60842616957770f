"""Durable job storage behind one narrow protocol."""

from runq.store.base import ReportResult, Store
from runq.store.open import open_store

__all__ = ["ReportResult", "Store", "open_store"]
