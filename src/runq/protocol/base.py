"""What every message shares: the tagged, array-encoded Struct base and request ids."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

ReqId = Annotated[int, Meta(ge=0, le=2**53)]


class Base(msgspec.Struct, frozen=True, array_like=True, tag_field="t", omit_defaults=False):
    pass
