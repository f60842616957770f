"""What route handlers are given: the broker they serve."""

from __future__ import annotations

from typing import Annotated, Final, TypeAlias

from litestar.di import NamedDependency
from litestar.params import Parameter

from runq.broker import Broker

BrokerDep: TypeAlias = NamedDependency[Broker]

# The largest integer every JSON reader keeps exactly (2**53 - 1): ids and fences over
# HTTP stay below it, so a document's bounds mean the same to every client.
MAX_JSON_INT: Final = 2**53 - 1
JobIdParam: TypeAlias = Annotated[int, Parameter(ge=1, le=MAX_JSON_INT, description="a job id")]
