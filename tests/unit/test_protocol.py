"""The sans-IO protocol: messages, frames, limits and the errors bad bytes earn."""

from __future__ import annotations

import contextlib
import itertools
import typing
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runq import errors
from runq.errors import FrameTooLarge, ProtocolError, RunqError
from runq.model import Assignment, ErrorInfo, Job, JobSpec, JobState, Outcome
from runq.model.files import FileRef
from runq.model.flow import RateLimit
from runq.model.output import JobLogs, LogLine, OutputBatch
from runq.model.schedule import CatchUp, Schedule, ScheduleSpec
from runq.model.token import TokenInfo
from runq.protocol import codec
from runq.protocol import limits as L
from runq.protocol import messages as m

UNIONS: dict[str, Any] = {
    "broker client port": m.TO_BROKER_CLIENT,
    "broker worker port": m.TO_BROKER_WORKER,
    "client": m.TO_CLIENT,
    "worker": m.TO_WORKER,
}

JOB = Job(
    id=42,
    task="wordcount",
    args=["the quick brown fox", 1, 2.5, None, [True]],
    kwargs={"k": {"nested": [1, 2]}},
    queue="default",
    priority=-3,
    state=JobState.FAILED,
    attempts=2,
    max_attempts=3,
    run_at=1_700_000_001.5,
    submitted_at=1_700_000_000.0,
    timeout=9.0,
    key="idem",
    result={"any": ["value"]},
    error=ErrorInfo("task_failed", "boom", True, "Traceback ..."),
    worker="w-1",
    fence=7,
    lease_until=1_700_000_030.0,
    started_at=1_700_000_001.0,
    finished_at=1_700_000_002.0,
)

SAMPLES: list[msgspec.Struct] = [
    m.Hello(
        role="worker",
        version=L.PROTOCOL_VERSION,
        token="secret",
        worker_id="w-1",
        queues=["default", "emails"],
        concurrency=8,
        running=[(1, 2), (3, 4)],
        info={"pid": 12, "host": "box", "load": 0.5},
    ),
    m.Hello(role="client", version=L.PROTOCOL_VERSION),
    m.Welcome(L.PROTOCOL_VERSION, "runq", 12.5, 2048),
    m.Error(3, "unknown_job", "no job with id 9"),
    m.Submit(
        1,
        [
            JobSpec("echo"),
            JobSpec(
                "wordcount",
                args=["a b", 1],
                kwargs={"x": None},
                queue="q",
                priority=5,
                run_at=1_700_000_000.0,
                delay=1.5,
                max_attempts=9,
                timeout=3.0,
                key="k",
            ),
            JobSpec("echo", args=["a"], unique_for=600.0, unique_mode="refuse"),
        ],
    ),
    m.Get(2, 42),
    m.Wait(3, 42, 1.5),
    m.ListJobs(4, "queued", "emails", 10, 99),
    m.ListJobs(5),
    m.Cancel(6, 42),
    m.GetStats(7),
    m.ListWorkers(8),
    m.ListQueues(9),
    m.PauseQueue(10, "emails", True),
    m.SetRateLimit(30, RateLimit("queue", "emails", 600, "m")),
    m.SetRateLimit(31, RateLimit("task", "send", 2.5, "s", burst=5)),
    m.RemoveRateLimit(32, "queue", "emails"),
    m.ListRateLimits(33),
    m.RateLimitList(34, [RateLimit("queue", "emails", 100)]),
    m.QueueList(10, [m.QueueInfo("emails", {"queued": 3}, True)]),
    m.QueueList(11, [m.QueueInfo("audit", {}, False, None, True)]),
    m.SetRetention(12, "audit", 30 * 86400.0),
    m.SetRetention(13, "audit", None, reset=True),
    m.Purge(14, 30 * 86400.0, "failed", "emails"),
    m.Purged(14, 1200),
    m.Explain(15, 42),
    m.Explanation(15, 42, "job 42 is waiting behind 3 jobs of higher priority in queue default"),
    m.AddSchedule(11, ScheduleSpec("nightly", "30 2 * * *", JobSpec("echo"), "Europe/Berlin")),
    m.ListSchedules(12),
    m.RemoveSchedule(13, "nightly"),
    m.PauseSchedule(14, "nightly", True),
    m.ScheduleList(
        12,
        [
            Schedule(
                "nightly",
                "30 2 * * *",
                "Europe/Berlin",
                JobSpec("echo", ["hi"], queue="cron"),
                CatchUp.ALL,
                False,
                1_700_000_100.0,
                None,
                1_700_000_000.0,
            )
        ],
    ),
    m.TaskSchedules([ScheduleSpec("task:app.beat", "*/5 * * * *", JobSpec("app.beat"))]),
    m.Submitted(1, [1, 2, 3]),
    m.Submitted(1, [1, 2, 1], [2]),
    m.JobReply(2, JOB),
    m.JobList(4, [JOB, JOB]),
    m.WorkerList(
        8,
        [m.WorkerInfo("w-1", ["default"], 4, 1, 10, 1_700_000_000.0, {"pid": 1})],
    ),
    m.StatsReply(7, {"jobs": {"queued": 1}, "success_rate": None}),
    m.Assign(
        [
            Assignment(42, 7, "echo", ["hi"], {}, 2, 3, None),
            Assignment(1, 1, "x", [], {}, 1, 1, 5.0),
        ]
    ),
    m.Report(
        9,
        [
            Outcome(42, 7, True, "hi"),
            Outcome(43, 1, False, None, ErrorInfo("unknown_task", "nope", False)),
        ],
    ),
    m.Reported(9),
    m.Heartbeat([(42, 7), (43, 1)]),
    m.CancelJobs([42, 43]),
    m.Retry(12, 42),
    m.Retry(13, None, "emails"),
    m.Retried(12, [42]),
    m.Drain(),
    m.Release(10, [(42, 7)]),
    m.Status(31.5, [m.ProcInfo(4242, "busy", 7, 20.5)]),
    m.ReadLogs(14, 42),
    m.ReadLogs(15, 42, after=17, limit=100),
    m.LogsReply(
        14,
        JobLogs(42, JobState.RUNNING, [LogLine(1, 1, 1.5, "stdout", "resized 1")], 1, 0.4, "m"),
    ),
    m.LogsReply(15, JobLogs(42, JobState.SUCCEEDED, [], 17)),
    m.Output(
        [
            OutputBatch(42, 7, [(1.5, "stdout", "hello"), (1.6, "log", "INFO t: x")], 0.4, "m"),
            OutputBatch(43, 2, progress=1.0),
        ]
    ),
    m.MakeToken(16, ["submit:emails", "read"], "web", 86400.0),
    m.MakeToken(17, ["admin"]),
    m.ListTokens(18),
    m.RevokeToken(19, "web"),
    m.TokenMade(16, TokenInfo("0123456789ab", "web", ["read"], 1.5, 86401.5), "runq_x_y"),
    m.TokenList(18, [TokenInfo("0123456789ab", "web", ["read"], 1.5, None, 2.5)]),
    m.OpenUpload(1, "photo.jpg", 10, "a" * 64),
    m.OpenArtifact(2, 7, 3, "out.gz", 0, "b" * 64),
    m.ResumeUpload(3, "0" * 32),
    m.UploadChunk(4, "0" * 32, 0, b"data"),
    m.FinishUpload(5, "0" * 32),
    m.ReadFile(6, "0" * 32, 0, 512 * 1024, 7),
    m.UploadState(1, "0" * 32, 4),
    m.Uploaded(5, FileRef("photo.jpg", "0" * 32, 10, "a" * 64)),
    m.FileData(6, "0" * 32, 0, b"data", 4),
]


def tag(msg: msgspec.Struct) -> str:
    return str(type(msg).__struct_config__.tag)


def members(union: Any) -> tuple[type, ...]:
    return typing.get_args(union)


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(L.HEADER_SIZE, "big") + body


def raw_frame(*fields: Any) -> bytes:
    """A frame carrying an arbitrary msgpack array, valid or not."""
    return frame(msgspec.msgpack.encode(list(fields)))


# -- messages -----------------------------------------------------------------------------


def test_the_samples_cover_every_message_type() -> None:
    assert {tag(s) for s in SAMPLES} == m.ALL_TAGS


def test_every_message_type_can_be_received_by_some_peer() -> None:
    receivable = {t for u in UNIONS.values() for t in members(u)}
    assert {type(s) for s in SAMPLES} <= receivable


def test_each_role_receives_only_its_own_messages() -> None:
    client_port = set(members(m.TO_BROKER_CLIENT))
    worker_port = set(members(m.TO_BROKER_WORKER))
    shared = {m.Hello, m.ResumeUpload, m.UploadChunk, m.FinishUpload, m.ReadFile}
    assert client_port & worker_port == shared
    assert m.Heartbeat not in client_port and m.Report not in client_port
    assert m.Submit not in worker_port and m.Get not in worker_port


@pytest.mark.parametrize("msg", SAMPLES, ids=[f"{tag(s)}-{i}" for i, s in enumerate(SAMPLES)])
def test_every_message_round_trips(msg: msgspec.Struct) -> None:
    data = codec.encode(msg)
    assert int.from_bytes(data[: L.HEADER_SIZE], "big") == len(data) - L.HEADER_SIZE
    receivers = [name for name, u in UNIONS.items() if type(msg) in members(u)]
    assert receivers
    for name in receivers:
        decoder: codec.FrameDecoder[Any] = codec.FrameDecoder(UNIONS[name])
        assert decoder.feed(data) == [msg], name
        assert decoder.buffered == 0


def test_messages_travel_as_tagged_arrays() -> None:
    body = codec.encode(m.Get(5, 42))[L.HEADER_SIZE :]
    assert msgspec.msgpack.decode(body) == ["get", 5, 42]


STREAM = b"".join(codec.encode(s) for s in SAMPLES if type(s) in members(m.TO_CLIENT))
STREAM_MESSAGES = [s for s in SAMPLES if type(s) in members(m.TO_CLIENT)]


def test_a_stream_split_at_every_byte_boundary_decodes_the_same() -> None:
    for cut in range(len(STREAM) + 1):
        decoder = codec.client_side()
        got = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:])
        assert got == STREAM_MESSAGES, f"cut at byte {cut}"
        assert decoder.buffered == 0


def test_a_stream_fed_one_byte_at_a_time_decodes_the_same() -> None:
    decoder = codec.client_side()
    got: list[Any] = []
    for i in range(len(STREAM)):
        got += decoder.feed(STREAM[i : i + 1])
    assert got == STREAM_MESSAGES
    assert decoder.buffered == 0


@given(st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_a_stream_cut_anywhere_decodes_the_same(cuts: list[int]) -> None:
    decoder = codec.client_side()
    got: list[Any] = []
    edges = [0, *sorted(cuts), len(STREAM)]
    for start, end in itertools.pairwise(edges):
        got += decoder.feed(STREAM[start:end])
    assert got == STREAM_MESSAGES


def test_an_empty_frame_body_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="malformed frame"):
        codec.FrameDecoder(m.TO_BROKER_CLIENT).feed(frame(b""))


# -- limits and bad bytes -----------------------------------------------------------------


def test_an_oversized_length_is_refused_before_the_body_arrives() -> None:
    decoder = codec.FrameDecoder(m.TO_BROKER_CLIENT, max_frame=1000)
    header = (1001).to_bytes(L.HEADER_SIZE, "big")
    with pytest.raises(FrameTooLarge, match="frame of 1001 bytes exceeds the limit of 1000 bytes"):
        decoder.feed(header)


def test_an_oversized_length_is_refused_even_when_the_header_arrives_in_pieces() -> None:
    decoder = codec.FrameDecoder(m.TO_BROKER_CLIENT)
    header = (L.MAX_FRAME + 1).to_bytes(L.HEADER_SIZE, "big")
    assert decoder.feed(header[:3]) == []
    with pytest.raises(FrameTooLarge):
        decoder.feed(header[3:])


def test_a_frame_at_the_limit_is_awaited_not_refused() -> None:
    decoder = codec.FrameDecoder(m.TO_BROKER_CLIENT, max_frame=1000)
    assert decoder.feed((1000).to_bytes(L.HEADER_SIZE, "big") + b"\x93") == []
    assert decoder.buffered == L.HEADER_SIZE + 1


def test_frame_too_large_is_a_protocol_error_with_its_own_code() -> None:
    assert issubclass(FrameTooLarge, ProtocolError)
    assert FrameTooLarge.code == "frame_too_large"
    assert ProtocolError.code == "protocol_error"


@pytest.mark.parametrize(
    "body",
    [
        b"\xc1",
        b"\xc1\xc1\xc1\xc1",
        b"\x93\xa3get",
        b"\xdd\xff\xff\xff\xff",
        b"\x93\xa3get\x01\x01\x02",  # trailing bytes
        b"\x93\xa3g\xffx\x01\x01",  # bad UTF-8 in the tag
        msgspec.msgpack.encode(["submit", 1, [{"task": "echo"}]]).replace(b"echo", b"ec\xffo"),
    ],
)
def test_a_garbage_body_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(ProtocolError, match="malformed frame"):
        codec.FrameDecoder(m.TO_BROKER_CLIENT).feed(frame(body))


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        (["get", "one", 42], r"Expected `int`, got `str` - at `\$\[1\]`"),
        (["get", 1, 0], r"Expected `int` >= 1 - at `\$\[2\]`"),
        (["get", 1], r"Expected `array` of at least length 3"),
        (["bogus", 1], r"Invalid value 'bogus' - at `\$\[0\]`"),
        ([1, 2, 3], r"Expected `str`, got `int` - at `\$\[0\]`"),
        (["submit", 1, []], r"Expected `array` of length >= 1"),
        (["submit", 1, [{"task": "has space"}]], r"at `\$\[2\]\[0\]\.task`"),
        (["submit", 1, [{"task": "t", "priority": 10**7}]], r"at `\$\[2\]\[0\]\.priority`"),
        (["submit", 1, [{"task": "t", "unique_for": 0}]], r"at `\$\[2\]\[0\]\.unique_for`"),
        (
            ["submit", 1, [{"task": "t", "unique_for": -5}]],
            r"> 0.0 - at `\$\[2\]\[0\]\.unique_for`",
        ),
        (["submit", 1, [{"task": "t", "unique_for": 1e12}]], r"at `\$\[2\]\[0\]\.unique_for`"),
        (["submit", 1, [{"task": "t", "unique_mode": "skip"}]], r"\.unique_mode`"),
        (["list", 1, None, None, L.MAX_LIST + 1, None], r"at `\$\[4\]`"),
    ],
)
def test_a_well_formed_but_wrong_message_says_what_is_wrong(fields: list[Any], text: str) -> None:
    with pytest.raises(ProtocolError, match=r"^invalid message: .*" + text):
        codec.FrameDecoder(m.TO_BROKER_CLIENT).feed(raw_frame(*fields))


def test_a_submit_over_the_batch_limit_is_refused() -> None:
    jobs = [{"task": "t"}] * (L.MAX_BATCH + 1)
    decoder = codec.FrameDecoder(m.TO_BROKER_CLIENT, max_frame=10 * L.MAX_FRAME)
    with pytest.raises(ProtocolError, match=f"length <= {L.MAX_BATCH}"):
        decoder.feed(raw_frame("submit", 1, jobs))


@pytest.mark.parametrize(
    ("msg", "union"),
    [
        (m.Heartbeat([(1, 1)]), m.TO_BROKER_CLIENT),
        (m.Report(1, []), m.TO_BROKER_CLIENT),
        (m.Submit(1, [JobSpec("echo")]), m.TO_BROKER_WORKER),
        (m.Get(1, 1), m.TO_BROKER_WORKER),
        (m.Welcome(1, "runq"), m.TO_BROKER_CLIENT),
        (m.Assign([]), m.TO_CLIENT),
        (m.Submitted(1, [1]), m.TO_WORKER),
    ],
    ids=lambda v: tag(v) if isinstance(v, msgspec.Struct) else "",
)
def test_a_known_message_of_another_role_is_not_accepted_here(
    msg: msgspec.Struct, union: Any
) -> None:
    decoder: codec.FrameDecoder[Any] = codec.FrameDecoder(union)
    with pytest.raises(ProtocolError, match=f"^message '{tag(msg)}' is not accepted here$"):
        decoder.feed(codec.encode(msg))


def test_messages_before_a_bad_frame_in_the_same_feed_are_not_half_handled() -> None:
    """A bad frame stops the stream: the decoder raises instead of returning a prefix."""
    decoder = codec.FrameDecoder(m.TO_BROKER_CLIENT)
    with pytest.raises(ProtocolError):
        decoder.feed(codec.encode(m.Get(1, 1)) + frame(b"\xc1"))


def test_deeply_nested_arguments_are_a_protocol_error() -> None:
    """msgspec refuses to decode past Python's recursion limit with a RecursionError.

    A Submit whose args nest a few thousand levels deep is a small frame (a few KB), well
    under the frame limit, so the decoder must turn this into a ProtocolError like any
    other bad input; otherwise the broker's ``data_received`` raises and asyncio drops the
    connection without an error frame.
    """
    body = msgspec.msgpack.encode(["submit", 1, [{"task": "echo", "args": [None]}]])
    deep = b"\x91" * 5_000 + b"\xc0"
    body = body[: -len(b"\x91\xc0")] + b"\x91" + deep
    assert len(body) < L.MAX_FRAME
    with pytest.raises(ProtocolError):
        codec.FrameDecoder(m.TO_BROKER_CLIENT).feed(frame(body))


# -- fuzzing ------------------------------------------------------------------------------


def feed_all(union: Any, chunks: list[bytes]) -> None:
    decoder: codec.FrameDecoder[Any] = codec.FrameDecoder(union, max_frame=4096)
    for chunk in chunks:
        decoder.feed(chunk)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(UNIONS.values())), st.lists(st.binary(max_size=64), max_size=8))
def test_random_bytes_raise_nothing_but_protocol_errors(union: Any, chunks: list[bytes]) -> None:
    with contextlib.suppress(ProtocolError):
        feed_all(union, chunks)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(UNIONS.values())), st.lists(st.binary(max_size=200), max_size=4))
def test_random_bodies_in_valid_frames_raise_nothing_but_protocol_errors(
    union: Any, bodies: list[bytes]
) -> None:
    try:
        feed_all(union, [frame(b) for b in bodies])
    except ProtocolError as exc:
        assert isinstance(exc, RunqError)
        assert exc.message


CORRUPTIBLE = [
    (codec.encode(s)[L.HEADER_SIZE :], name)
    for s in SAMPLES
    for name, union in UNIONS.items()
    if type(s) in members(union)
]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(CORRUPTIBLE),
    st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, 8),
)
def test_corrupted_messages_raise_nothing_but_protocol_errors(
    sample: tuple[bytes, str], flips: list[tuple[int, int]], cut: int
) -> None:
    """Real messages with a few bytes changed (and maybe cut short) reach every decoding
    path: bad UTF-8, wrong types, bad lengths, unknown tags."""
    body, union = bytearray(sample[0]), UNIONS[sample[1]]
    for pos, value in flips:
        body[pos % len(body)] = value
    body = body[: max(1, len(body) - cut)]
    decoder: codec.FrameDecoder[Any] = codec.FrameDecoder(union)
    try:
        decoder.feed(frame(bytes(body)))
    except ProtocolError as exc:
        assert exc.message


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(list(UNIONS.values())),
    st.sampled_from(sorted(m.ALL_TAGS)),
    st.lists(msgpack_values, max_size=6),
)
def test_random_messages_with_real_tags_decode_or_raise_protocol_errors(
    union: Any, name: str, fields: list[Any]
) -> None:
    decoder: codec.FrameDecoder[Any] = codec.FrameDecoder(union)
    try:
        (msg,) = decoder.feed(raw_frame(name, *fields))
    except ProtocolError:
        return
    assert tag(msg) == name
    assert type(msg) in members(union)


# -- error codes --------------------------------------------------------------------------


def all_errors() -> list[type[RunqError]]:
    found: list[type[RunqError]] = []
    todo: list[type[RunqError]] = [RunqError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if c.__module__ == "runq.errors"]


def test_error_codes_are_unique() -> None:
    codes = [cls.code for cls in all_errors()]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("cls", all_errors(), ids=lambda c: c.code)
def test_an_error_frame_rebuilds_the_same_error(cls: type[RunqError]) -> None:
    sent = m.Error(1, cls.code, "why")
    (got,) = codec.client_side().feed(codec.encode(sent))
    err = errors.from_code(got.code, got.message)
    assert type(err) is cls
    assert err.message == "why"


def test_submitted_gained_merged_as_a_trailing_field_old_peers_skip() -> None:
    # Given: the reply of a broker that knows merged, and of one that does not
    new = codec.encode(m.Submitted(7, [4, 5, 4], [2]))
    body = msgspec.msgpack.encode(["submitted", 7, [4, 5]])
    old = len(body).to_bytes(L.HEADER_SIZE, "big") + body
    # Then: this client reads both (an old client ignores a trailing field it lacks)
    (got,) = codec.client_side().feed(new)
    assert (got.ids, got.merged) == ([4, 5, 4], [2])
    (got,) = codec.client_side().feed(old)
    assert (got.ids, got.merged) == ([4, 5], [])

    class OldSubmitted(msgspec.Struct, array_like=True, tag="submitted", tag_field="t"):
        req: int
        ids: list[int]

    assert msgspec.msgpack.decode(new[L.HEADER_SIZE :], type=OldSubmitted).ids == [4, 5, 4]


def test_an_already_queued_error_names_the_existing_job() -> None:
    sent = m.Error(1, "already_queued", "job 12 is already queued with the same task and arguments")
    (got,) = codec.client_side().feed(codec.encode(sent))
    err = errors.from_code(got.code, got.message)
    assert isinstance(err, errors.AlreadyQueued) and err.job_id == 12


def test_an_unknown_error_code_becomes_a_plain_runq_error() -> None:
    err = errors.from_code("from_the_future", "new")
    assert type(err) is RunqError
    assert str(err) == "new"


# -- job output ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        ["output", []],  # no batches
        ["output", [[42, 7, [[1.5, "tty", "x"]], None, None]]],  # unknown stream
        ["output", [[42, 7, [[1.5, "stdout", "x" * 4097]], None, None]]],  # line too long
        ["output", [[42, 7, [], 1.5, None]]],  # progress past 1
        ["output", [[42, 7, [], 0.5, "m" * 201]]],  # message too long
        ["output", [[42, 7, [[1.5, "stdout", "x"]] * 1001, None, None]]],  # too many lines
    ],
)
def test_output_out_of_bounds_is_refused(fields: list[Any]) -> None:
    with pytest.raises(ProtocolError, match="invalid message"):
        codec.FrameDecoder(m.TO_BROKER_WORKER).feed(raw_frame(*fields))


@pytest.mark.parametrize("fields", [["logs", 1, 42, -1], ["logs", 1, 0], ["logs", 1, 42, 0, 0]])
def test_read_logs_with_a_bad_job_seq_or_limit_is_refused(fields: list[Any]) -> None:
    with pytest.raises(ProtocolError, match="invalid message"):
        codec.FrameDecoder(m.TO_BROKER_CLIENT).feed(raw_frame(*fields))
