"""Durable job storage behind one narrow protocol."""

from runq.store.base import ReportResult, Requeued, Store
from runq.store.open import open_store

__all__ = ["ReportResult", "Requeued", "Store", "open_store"]
