"""Mutations of valid frames, shared by the fuzz tests (test_frame_fuzz.py here, and
tests/system/test_fuzz_live.py against a real broker). Deterministic for a given
``random.Random``, so a failure can be replayed from its seed.

The valid frames are those of ``test_protocol.SAMPLES``, which holds one message of every
type (a test there says so): a new message type is fuzzed as soon as it has a sample.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from runq.protocol import codec
from runq.protocol import limits as L
from runq.protocol import messages as m

# Bytes that mean something to msgpack: nil, false/true, the never-used 0xc1, str8/16/32,
# bin8, array16/32, map16/32, ext, fixarray and fixmap lengths, and int edges.
MAGIC = bytes([0x00, 0x7F, 0x80, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xC3, 0xC4])
MAGIC += bytes([0xC7, 0xCC, 0xCF, 0xD3, 0xD9, 0xDA, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF, 0xFF])
HELLO = {  # a valid hello for each port, to get past the handshake
    "client": codec.encode(m.Hello(role="client", version=L.PROTOCOL_VERSION)),
    "worker": codec.encode(m.Hello(role="worker", version=L.PROTOCOL_VERSION, worker_id="w-fz")),
}


def frames_of(samples: Sequence[msgspec.Struct], union: Any = None) -> list[bytes]:
    """The frames of ``samples`` (those a peer receiving ``union`` takes, if given)."""
    members = set(union.__args__) if union is not None else None
    return [codec.encode(s) for s in samples if members is None or type(s) in members]


def _flip(body: bytearray, rng: random.Random) -> None:
    body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)


def _magic(body: bytearray, rng: random.Random) -> None:
    body[rng.randrange(len(body))] = rng.choice(MAGIC)


def _insert(body: bytearray, rng: random.Random) -> None:
    at = rng.randrange(len(body) + 1)
    body[at:at] = rng.randbytes(rng.randint(1, 8))


def _delete(body: bytearray, rng: random.Random) -> None:
    at = rng.randrange(len(body))
    del body[at : at + rng.randint(1, 8)]


def _repeat(body: bytearray, rng: random.Random) -> None:
    at = rng.randrange(len(body))
    piece = body[at : at + rng.randint(1, 16)]
    body[at:at] = piece * rng.randint(1, 4)


def _truncate(body: bytearray, rng: random.Random) -> None:
    del body[rng.randrange(1, len(body) + 1) :]


MUTATORS: list[Callable[[bytearray, random.Random], None]] = [
    _flip,
    _magic,
    _magic,
    _insert,
    _delete,
    _repeat,
    _truncate,
]


def mutate(frame: bytes, rng: random.Random, lie_about_length: float = 0.05) -> bytes:
    """``frame`` with one to four changes in its body; its header gives the new body's
    length, except (with probability ``lie_about_length``) when it lies."""
    body = bytearray(frame[L.HEADER_SIZE :])
    for _ in range(rng.randint(1, 4)):
        if not body:
            body.append(rng.choice(MAGIC))
        rng.choice(MUTATORS)(body, rng)
    size = len(body)
    if rng.random() < lie_about_length:
        size = rng.choice([0, max(0, size - 1), size + 1, L.MAX_FRAME + 1, 2**32 - 1])
    return size.to_bytes(L.HEADER_SIZE, "big") + bytes(body)


def noise(rng: random.Random, most: int = 64) -> bytes:
    """Random bytes, header and all."""
    return rng.randbytes(rng.randint(1, most))
