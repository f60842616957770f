"""Job output in pieces: lines, their bounds, and the batches a worker sends."""

from __future__ import annotations

import pytest

import runq
from runq.model.output import MAX_LINE, LineBuffer
from runq.protocol import codec
from runq.protocol import limits as L
from runq.worker.output import MESSAGE_CHARS, Output


def texts(buf: LineBuffer) -> list[tuple[str, str]]:
    return [(stream, text) for _, stream, text in buf.take()]


def test_pieces_become_lines_per_stream() -> None:
    buf = LineBuffer()
    buf.write("stdout", "hel", 1.0)
    buf.write("stderr", "oops\n", 1.0)
    buf.write("stdout", "lo\nwor", 1.0)
    assert texts(buf) == [("stderr", "oops"), ("stdout", "hello")]
    buf.write("stdout", "ld\n\n", 1.0)
    buf.line("log", "INFO x: y", 1.0)
    buf.write("stdout", "open", 1.0)
    buf.close(2.0)
    assert texts(buf) == [
        ("stdout", "world"),
        ("stdout", ""),
        ("log", "INFO x: y"),
        ("stdout", "open"),
    ]


@pytest.mark.parametrize("size", [MAX_LINE - 1, MAX_LINE, MAX_LINE + 1, 2 * MAX_LINE, 10_000])
def test_a_long_line_is_split_into_pieces(size: int) -> None:
    buf = LineBuffer()
    buf.write("stdout", "y" * size, 1.0)
    buf.write("stdout", "\n", 1.0)
    buf.write("stdout", "next\n", 1.0)
    got = [t for _, t in texts(buf)]
    assert "".join(got[:-1]) == "y" * size and got[-1] == "next"
    assert all(0 < len(t) <= MAX_LINE for t in got)


def test_past_the_limit_text_is_counted_and_noted() -> None:
    buf = LineBuffer(limit=10)
    buf.write("stdout", "12345\n", 1.0)
    buf.write("stdout", "6789012345\n", 1.0)
    buf.write("stdout", "more\n", 1.0)
    buf.close(2.0)
    assert texts(buf) == [
        ("stdout", "12345"),
        ("stdout", "67890"),
        ("runq", "[runq: output cut at 10 characters, 9 more not kept]"),
    ]


def test_output_messages_are_bounded() -> None:
    out = Output()
    line = (1.0, "stdout", "z" * MAX_LINE)
    out.add(1, 7, [line] * 100, 0.5, "half")
    out.add(2, 3, [], 1.0)
    out.add(3, 1, [(1.0, "tty", "bad stream")])  # dropped
    messages = out.take()
    assert not out
    assert len(messages) > 1
    for msg in messages:
        assert sum(len(t) for b in msg.batches for _, _, t in b.lines) <= MESSAGE_CHARS
        assert len(codec.encode(msg)) < L.MAX_FRAME
    batches = [b for msg in messages for b in msg.batches]
    assert sum(len(b.lines) for b in batches if b.id == 1) == 100
    assert [(b.id, b.progress, b.message) for b in batches if b.progress is not None] == [
        (1, 0.5, "half"),
        (2, 1.0, None),
    ]
    assert 3 not in {b.id for b in batches}


def test_progress_outside_a_task_is_checked_and_ignored() -> None:
    runq.progress(0.5, "half")
    runq.progress(-3)
    with pytest.raises(TypeError):
        runq.progress(True)
    with pytest.raises(ValueError, match="NaN"):
        runq.progress(float("nan"))
