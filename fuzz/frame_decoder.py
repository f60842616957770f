"""Coverage-guided fuzzing of the frame decoder with atheris (`make fuzz`).

Each input picks a decoder (the broker's client port, its worker port, the client side,
the worker side), a few cut points, and a byte stream fed in those pieces. The decoder
must give valid messages that can be sent on, or raise ProtocolError: any other
exception is a crash, and libFuzzer keeps its input in fuzz/crashes/.

The run starts from a seed corpus in fuzz/corpus/: one frame of every message type
(tests/unit/test_protocol.py's SAMPLES), written there on first use.

    .venv/bin/python fuzz/frame_decoder.py -max_total_time=60   # fuzz for a minute
    .venv/bin/python fuzz/frame_decoder.py fuzz/crashes/crash-…  # replay one input
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports():
    from runq.errors import ProtocolError
    from runq.protocol import codec
    from runq.protocol import messages as m

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
SIDES: list[Any] = [
    lambda: codec.FrameDecoder(m.TO_BROKER_CLIENT),
    lambda: codec.FrameDecoder(m.TO_BROKER_WORKER),
    codec.client_side,
    codec.worker_side,
]


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    decoder = SIDES[fdp.ConsumeIntInRange(0, len(SIDES) - 1)]()
    cuts = sorted(fdp.ConsumeIntInRange(0, 4096) for _ in range(fdp.ConsumeIntInRange(0, 3)))
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    try:
        for piece in pieces:
            for msg in decoder.feed(piece):
                codec.encode(msg)  # whatever is decoded can be sent on
    except ProtocolError:
        pass


def seed() -> None:
    """One input per message type and decoder: the side byte, no cuts, the frame."""
    sys.path.insert(0, str(HERE.parent / "tests" / "unit"))
    from test_protocol import SAMPLES

    CORPUS.mkdir(exist_ok=True)
    for n, sample in enumerate(SAMPLES):
        for side in range(len(SIDES)):
            path = CORPUS / f"seed-{n:03}-{side}"
            path.write_bytes(bytes([side, 0]) + codec.encode(sample))


def main() -> None:
    argv = sys.argv
    if not any(not a.startswith("-") for a in argv[1:]):  # no corpus or input named
        seed()
        argv = [*argv, str(CORPUS)]
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
