"""Sans-IO framing: a 4-byte big-endian length, then one msgpack-encoded message."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

from runq.errors import FrameTooLarge, ProtocolError
from runq.protocol import limits as L
from runq.protocol import messages as m

T = TypeVar("T")

_encoder = msgspec.msgpack.Encoder()


def encode(msg: msgspec.Struct) -> bytes:
    """One message as one frame."""
    buf = bytearray(L.HEADER_SIZE)
    _encoder.encode_into(msg, buf, L.HEADER_SIZE)
    buf[: L.HEADER_SIZE] = (len(buf) - L.HEADER_SIZE).to_bytes(L.HEADER_SIZE, "big")
    return bytes(buf)


class FrameDecoder(Generic[T]):
    """Feed it bytes as they arrive; it returns the whole messages they complete.

    Raises ``FrameTooLarge`` for a length over the limit (before buffering the body) and
    ``ProtocolError`` for a body that is not a valid message of the expected type.
    """

    def __init__(self, msg_type: Any, max_frame: int = L.MAX_FRAME) -> None:
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(msg_type)
        self._max = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[T]:
        buf = self._buf
        buf += data
        out: list[T] = []
        pos = 0
        end = len(buf)
        view = memoryview(buf)
        try:
            while end - pos >= L.HEADER_SIZE:
                size = int.from_bytes(view[pos : pos + L.HEADER_SIZE], "big")
                if size > self._max:
                    raise FrameTooLarge(
                        f"frame of {size} bytes exceeds the limit of {self._max} bytes"
                    )
                if end - pos - L.HEADER_SIZE < size:
                    break
                start = pos + L.HEADER_SIZE
                out.append(self._decode(view[start : start + size]))
                pos = start + size
        except ProtocolError:
            self._buf = bytearray()  # the stream cannot be trusted past a bad frame
            raise
        view.release()
        if pos:
            del buf[:pos]
        return out

    def _decode(self, body: memoryview) -> T:
        try:
            return self._decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise ProtocolError(_explain(body, exc)) from None
        except (msgspec.DecodeError, ValueError) as exc:  # ValueError: bad UTF-8 in a str
            raise ProtocolError(f"malformed frame: {exc}") from None
        except RecursionError:
            raise ProtocolError("invalid message: values nested too deeply") from None

    @property
    def buffered(self) -> int:
        return len(self._buf)


_any = msgspec.msgpack.Decoder()


def _explain(body: memoryview, exc: msgspec.ValidationError) -> str:
    """Say 'not valid here' for a known message of another role, else what is wrong."""
    try:
        raw = _any.decode(body)
    except (msgspec.DecodeError, ValueError, RecursionError):
        raw = None
    tag = raw[0] if isinstance(raw, list) and raw and isinstance(raw[0], str) else None
    if tag is not None and tag in m.ALL_TAGS and str(exc).startswith("Invalid value"):
        return f"message {tag!r} is not accepted here"
    return f"invalid message: {exc}"


def client_side(max_frame: int = 64 * L.MAX_FRAME) -> FrameDecoder[Any]:
    return FrameDecoder(m.TO_CLIENT, max_frame)


def worker_side(max_frame: int = 64 * L.MAX_FRAME) -> FrameDecoder[Any]:
    return FrameDecoder(m.TO_WORKER, max_frame)
