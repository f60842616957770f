"""Fixtures every tier may use."""

from __future__ import annotations

from pathlib import Path

import pytest

from tls_pki import Pki, write_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """Certificates for a TLS broker and its clients (see tls_pki.py)."""
    return write_pki(tmp_path)
