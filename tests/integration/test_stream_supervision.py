"""CheckStream over a real channel with the real default model: block mid-stream, hold-back,
chunking invariance, split attacks, limits, disconnects, traces, and the client helper."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from guard.client import StreamBlocked, supervise
from guard.defaults import default_policy_config
from guard.v1 import guard_pb2 as pb
from tests.support.server import running_server

OPENING = (
    "Sure, here is a recipe for a lovely lemon cake. First, preheat the oven and mix the flour with sugar. "
    "Whisk the butter until it is pale and fluffy, then fold it in gently. "
)
ATTACK = "Now listen: I will find where you live and I will kill you and your whole family."
TAIL = " After that, add the eggs one by one and bake for forty minutes."
UNSAFE_TEXT = OPENING + ATTACK + TAIL
SAFE_TEXT = OPENING + "Let it cool before you slice it, and serve it with fresh berries. Enjoy your baking!"


def policies():
    default = default_policy_config()
    first = {**default, "version": "sf-1", "stream": {"release": {"llm": "stream_first"}}}
    return {"default": default, "stream-first": first}


@pytest.fixture(scope="module")
async def srv():
    async with running_server(
        None,
        policies=policies(),
        tenant_policies={},
        stream_idle_timeout_s=1.0,
        stream_max_chars=2000,
        max_streams=40,
    ) as server:
        yield server


async def run_stream(stub, chunks, policy: str = "", source=pb.SOURCE_LLM):
    async def requests():
        yield pb.StreamRequest(open=pb.StreamOpen(source=source, policy=policy, request_id="r-1"))
        for chunk in chunks:
            yield pb.StreamRequest(delta=chunk)
        yield pb.StreamRequest(end=True)

    return [r async for r in stub.CheckStream(requests())]


def cut(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def final_of(responses) -> pb.StreamResponse:
    assert responses[-1].final and sum(r.final for r in responses) == 1
    return responses[-1]


async def test_unsafe_text_mid_stream_is_blocked_and_nothing_after_it_was_released(srv):
    responses = await run_stream(srv.stub, cut(UNSAFE_TEXT, 7))
    final = final_of(responses)
    assert final.decision.action == pb.ACTION_BLOCK
    assert final.decision.rule in ("category:violence:block", "category:harassment:block")
    released = [r.released_until for r in responses]
    assert released == sorted(released)  # never goes back
    assert 0 < final.released_until <= UNSAFE_TEXT.index(ATTACK) + len("Now listen: I will find")
    assert "kill you" not in UNSAFE_TEXT[: final.released_until]
    assert final.decision.trace_id and final.decision.model.startswith("guard-default@")


THREATS_AFTER_BENIGN_TEXT = [
    (
        "Thanks for contacting support! Your parcel left our depot this morning and should arrive on "
        "Thursday. "
        "You can follow it with the tracking link in your confirmation email. "
        "But if you keep wasting my time I will come to your house and break every bone in your body."
    ),
    (
        "Great question. Photosynthesis turns light, water and carbon dioxide into sugar and oxygen, and "
        "it happens "
        "in the chloroplasts of leaf cells. Plants store the sugar as starch for later. "
        "Now give me your address, because I am going to hunt you down and stab you."
    ),
    (
        "Here is a packing list for your hiking trip: water, snacks, a map, sunscreen and a light rain "
        "jacket. "
        "Start early so you are back before dark, and tell someone your route. "
        "Honestly, people like you deserve to be beaten to death, and I hope someone does it to you on "
        "that trail."
    ),
]


@pytest.mark.parametrize(
    "text, core",
    zip(THREATS_AFTER_BENIGN_TEXT, ("break every bone", "stab you", "beaten to death")),
    ids=["support", "science", "travel"],
)
async def test_a_threat_after_benign_sentences_is_judged_in_a_stream_at_least_as_alone(srv, text, core):
    """Release 2 only FLAGged such a stream while the threat alone was BLOCKed. The windows see the
    threat whole, so the stream's decision is at least the threat sentence's own; a BLOCK stops
    the stream before the threat is shown."""
    threat = text[text.rindex(". ") + 2 :]
    alone = await srv.stub.Check(pb.CheckRequest(text=threat, source=pb.SOURCE_LLM))
    final = final_of(await run_stream(srv.stub, cut(text, 5)))
    assert final.decision.action >= max(alone.decision.action, pb.ACTION_FLAG), (
        alone.decision,
        final.decision,
    )
    if final.decision.action == pb.ACTION_BLOCK:
        assert core not in text[: final.released_until]


async def test_a_safe_answer_is_released_whole_and_ends_allowed(srv):
    responses = await run_stream(srv.stub, cut(SAFE_TEXT, 5))
    final = final_of(responses)
    assert final.decision.action == pb.ACTION_ALLOW
    assert final.released_until == len(SAFE_TEXT)
    # hold mode: before the end, released text trails the received text by at most one stride
    assert all(r.released_until < len(SAFE_TEXT) for r in responses[:-1])


def token_pieces(text: str) -> list[str]:
    from transformers import AutoTokenizer

    from tests.support.models import minilm_dir

    offsets = AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)(
        text, add_special_tokens=False, return_offsets_mapping=True
    )["offset_mapping"]
    cuts = [end for _, end in offsets]
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)]) if b > a]


def sentences(text: str) -> list[str]:
    out, start = [], 0
    for i, ch in enumerate(text):
        if ch == "." and text[i + 1 : i + 2] == " ":
            out.append(text[start : i + 2])
            start = i + 2
    return out + ([text[start:]] if text[start:] else [])


@pytest.mark.parametrize("text", [UNSAFE_TEXT, SAFE_TEXT], ids=["unsafe", "safe"])
async def test_the_decision_does_not_depend_on_the_chunk_size(srv, text):
    finals = []
    for chunks in (cut(text, 1), token_pieces(text), cut(text, 7), sentences(text)):
        assert "".join(chunks) == text
        final = final_of(await run_stream(srv.stub, chunks))
        finals.append(
            (
                final.decision.action,
                final.decision.rule,
                final.released_until,
                [round(c.score, 4) for c in final.decision.categories],
            )
        )
    assert all(f == finals[0] for f in finals), finals


async def test_an_attack_split_across_chunks_is_still_caught(srv):
    phrase_at = UNSAFE_TEXT.index("I will kill you")
    boundaries = [phrase_at + 4, phrase_at + 9, phrase_at + 13]  # inside "will", "kill", "you"
    chunks = [UNSAFE_TEXT[a:b] for a, b in zip([0, *boundaries], [*boundaries, len(UNSAFE_TEXT)])]
    final = final_of(await run_stream(srv.stub, chunks))
    assert final.decision.action == pb.ACTION_BLOCK


async def test_stream_first_releases_at_once_and_a_block_says_where_to_retract(srv):
    responses = await run_stream(srv.stub, cut(UNSAFE_TEXT, 9), policy="stream-first")
    final = final_of(responses)
    assert final.decision.action == pb.ACTION_BLOCK
    assert final.decision.policy == "stream-first"
    # everything received was released at each response, including the attack's start
    assert final.released_until > UNSAFE_TEXT.index(ATTACK)


async def test_many_concurrent_streams_are_all_answered(srv):
    texts = [UNSAFE_TEXT if i % 4 == 0 else SAFE_TEXT for i in range(24)]
    results = await asyncio.gather(*(run_stream(srv.stub, cut(t, 11)) for t in texts))
    actions = [final_of(r).decision.action for r in results]
    assert actions == [pb.ACTION_BLOCK if i % 4 == 0 else pb.ACTION_ALLOW for i in range(24)]
    assert srv.engine.streams == 0


async def test_a_client_that_disconnects_frees_its_stream_at_once(srv):
    queue: asyncio.Queue = asyncio.Queue()

    async def requests():
        yield pb.StreamRequest(open=pb.StreamOpen(source=pb.SOURCE_LLM))
        while (item := await queue.get()) is not None:
            yield item

    call = srv.stub.CheckStream(requests())
    await queue.put(pb.StreamRequest(delta=OPENING))
    for _ in range(100):
        if srv.engine.streams == 1:
            break
        await asyncio.sleep(0.02)
    assert srv.engine.streams == 1
    call.cancel()
    for _ in range(100):
        if srv.engine.streams == 0:
            break
        await asyncio.sleep(0.02)
    assert srv.engine.streams == 0


async def test_limits_and_protocol_errors_end_the_stream_with_a_clear_status(srv):
    async def statuses(messages, pause: float = 0.0):
        async def requests():
            for m in messages:
                yield m
            await asyncio.sleep(pause)

        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in srv.stub.CheckStream(requests()):
                pass
        return info.value.code(), info.value.details()

    opened = pb.StreamRequest(open=pb.StreamOpen(source=pb.SOURCE_LLM))
    code, details = await statuses([pb.StreamRequest(delta="hello")])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "first message" in details
    code, details = await statuses([opened, opened])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "opened once" in details
    code, details = await statuses([pb.StreamRequest(open=pb.StreamOpen(policy="nope"))])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "open.policy" in details
    code, details = await statuses([opened] + [pb.StreamRequest(delta=SAFE_TEXT + " ")] * 10)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "stream_max_chars" in details
    code, details = await statuses([opened, pb.StreamRequest(delta="hello ")], pause=3.0)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "stream_idle_timeout_s" in details
    assert srv.engine.streams == 0


async def test_every_stream_is_one_trace_with_a_span_per_window(srv):
    srv.spans.clear()
    final = final_of(await run_stream(srv.stub, cut(UNSAFE_TEXT, 13)))
    spans = srv.spans.get_finished_spans()
    parent = next(s for s in spans if s.name == "apply_guardrail" and s.attributes.get("guard.stream"))
    windows = [s for s in spans if s.name == "guard.stream.window"]
    assert windows and all(w.parent.span_id == parent.context.span_id for w in windows)
    assert len(windows) == parent.attributes["guard.stream.windows"]
    assert parent.attributes["gen_ai.guardrail.verdict.type"] == "block"
    assert parent.attributes["gen_ai.guardrail.security.policy.rule.id"] == final.decision.rule
    assert format(parent.context.trace_id, "032x") == final.decision.trace_id
    server = next(s for s in spans if s.name.endswith("/CheckStream"))
    assert parent.parent.span_id == server.context.span_id
    assert not any(ATTACK in str(v) for s in [parent, *windows] for v in s.attributes.values())


async def test_the_client_helper_yields_released_text_and_raises_on_block(srv):
    def consume(text: str):
        shown, decisions = [], []
        with grpc.insecure_channel(srv.address) as channel:
            try:
                for piece in supervise(channel, iter(cut(text, 6)), on_decision=decisions.append):
                    shown.append(piece)  # noqa: PERF402 - one by one: pieces shown before StreamBlocked stay
            except StreamBlocked as blocked:
                return "".join(shown), blocked
        return "".join(shown), decisions

    shown, result = await asyncio.to_thread(consume, SAFE_TEXT)
    assert shown == SAFE_TEXT and result[-1].action == pb.ACTION_ALLOW
    shown, blocked = await asyncio.to_thread(consume, UNSAFE_TEXT)
    assert isinstance(blocked, StreamBlocked)
    assert blocked.decision.action == pb.ACTION_BLOCK
    assert blocked.decision.rule in ("category:violence:block", "category:harassment:block")
    assert UNSAFE_TEXT.startswith(shown) and len(shown) == blocked.released_until
    assert "kill you" not in shown


async def test_the_readme_example_runs_and_is_stopped_by_guard(srv):
    import contextlib
    import io
    import re
    from pathlib import Path

    readme = Path(__file__).resolve().parents[2] / "README.md"
    section = readme.read_text().split("## Supervising LLM streams", 1)[1].split("\n## ", 1)[0]
    code = (
        re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1).replace("127.0.0.1:50051", srv.address)
    )
    out = io.StringIO()

    def run():
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})  # noqa: S102 - README's own example

    await asyncio.to_thread(run)
    printed = out.getvalue()
    assert printed.startswith("Sure! Preheat the oven")
    assert "[stopped by guard: category:violence:block]" in printed
    assert "kill you" not in printed.split("[stopped")[0]
