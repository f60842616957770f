"""Property tests of the frame decoder against hostile bytes: whatever comes in, the
decoder either returns valid messages of the type it expects or raises ProtocolError
(a subclass included), and how the bytes are split into reads changes nothing.

test_protocol.py fuzzes message bodies; here whole frames and streams of them are
mutated (headers, lengths, several frames in a row) for every decoder a peer uses: the
broker's two ports and the client and worker sides (fuzz/frame_decoder.py does the same
with atheris, guided by coverage).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import frames_of, mutate, noise
from test_protocol import SAMPLES

from runq.errors import ProtocolError
from runq.protocol import codec
from runq.protocol import limits as L
from runq.protocol import messages as m

DECODERS: dict[str, Callable[[], codec.FrameDecoder[Any]]] = {
    "broker client port": lambda: codec.FrameDecoder(m.TO_BROKER_CLIENT),
    "broker worker port": lambda: codec.FrameDecoder(m.TO_BROKER_WORKER),
    "client side": codec.client_side,
    "worker side": codec.worker_side,
}
UNION = {
    "broker client port": m.TO_BROKER_CLIENT,
    "broker worker port": m.TO_BROKER_WORKER,
    "client side": m.TO_CLIENT,
    "worker side": m.TO_WORKER,
}
ALL_FRAMES = frames_of(SAMPLES)  # every role's: a port must also survive the others'
FUZZ = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)

Outcome = tuple[list[Any], tuple[type, str] | None]


def feed(side: str, chunks: list[bytes]) -> Outcome:
    """The messages the chunks give, in order, and the error that ended them."""
    decoder = DECODERS[side]()
    got: list[Any] = []
    for chunk in chunks:
        try:
            got += decoder.feed(chunk)
        except ProtocolError as exc:
            return got, (type(exc), exc.message)
    return got, None


def frame_by_frame(side: str, stream: bytes) -> Outcome:
    """The reference: the stream cut at its frame boundaries (a partial tail whole)."""
    pieces, pos = [], 0
    while len(stream) - pos >= L.HEADER_SIZE:
        end = pos + L.HEADER_SIZE + int.from_bytes(stream[pos : pos + L.HEADER_SIZE], "big")
        pieces.append(stream[pos:end])
        pos = end
    return feed(side, [*pieces, stream[pos:]])


def accepted(side: str, outcome: Outcome) -> None:
    members = UNION[side].__args__
    messages, error = outcome
    for msg in messages:
        assert type(msg) in members
        codec.encode(msg)  # whatever is decoded can be sent on
    if error is not None:
        assert issubclass(error[0], ProtocolError) and error[1]


def cut(stream: bytes, where: list[int]) -> list[bytes]:
    points = sorted({w % (len(stream) + 1) for w in where})
    return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]


def hostile_stream(rng: random.Random, frames: list[bytes]) -> bytes:
    """Valid frames, mutated frames and noise, in a row."""
    parts = []
    for _ in range(rng.randint(1, 6)):
        roll = rng.random()
        frame = rng.choice(frames)
        parts.append(frame if roll < 0.4 else mutate(frame, rng) if roll < 0.9 else noise(rng))
    return b"".join(parts)


sides = st.sampled_from(sorted(DECODERS))
seeds = st.integers(0, 2**32 - 1)
splits = st.lists(st.integers(0, 2**16), max_size=12)


@FUZZ
@given(sides, st.binary(max_size=512), splits)
def test_arbitrary_bytes_give_messages_or_protocol_errors(
    side: str, data: bytes, where: list[int]
) -> None:
    accepted(side, feed(side, cut(data, where)))
    accepted(side, feed(side, [data]))


@FUZZ
@given(sides, seeds)
def test_mutated_frames_of_every_type_give_messages_or_protocol_errors(
    side: str, seed: int
) -> None:
    rng = random.Random(seed)
    for frame in ALL_FRAMES:
        accepted(side, feed(side, [mutate(frame, rng)]))


@FUZZ
@given(sides, seeds, splits)
def test_feeding_in_chunks_equals_feeding_at_once(side: str, seed: int, where: list[int]) -> None:
    """The same messages and the same error, however the reads fall. A bad frame spoils
    the read it came in: the messages of that read are not handled, those of earlier
    reads were (a prefix of the reference)."""
    stream = hostile_stream(random.Random(seed), ALL_FRAMES)
    reference, error = frame_by_frame(side, stream)
    accepted(side, (reference, error))
    for chunks in (cut(stream, where), [stream]):
        got, got_error = feed(side, chunks)
        assert got_error == error
        assert wire(got) == wire(reference if error is None else reference[: len(got)])
    assert feed(side, [stream])[0] == [] or error is None


def wire(messages: list[Any]) -> list[bytes]:
    """Messages compared as bytes (a NaN is not equal to itself)."""
    return [codec.encode(msg) for msg in messages]


@FUZZ
@given(sides, seeds)
def test_valid_frames_split_anywhere_decode_to_themselves(side: str, seed: int) -> None:
    rng = random.Random(seed)
    frames = frames_of(SAMPLES, UNION[side])
    stream = b"".join(rng.choices(frames, k=8))
    messages, error = feed(side, cut(stream, [rng.randrange(len(stream)) for _ in range(10)]))
    assert error is None
    assert wire(messages) == wire(feed(side, [stream])[0])
    assert len(messages) == 8


@pytest.mark.parametrize("side", sorted(DECODERS))
def test_every_side_has_samples_to_mutate(side: str) -> None:
    assert len(frames_of(SAMPLES, UNION[side])) >= 4
