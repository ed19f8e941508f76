"""The output rail: an LLM's answer, streamed or whole, judged with source=llm before the client
sees it.

A streamed answer goes through the same `StreamSession` as gRPC's CheckStream (windows, batcher,
release mode and policy of the request): the client receives exactly the text the session released,
re-chunked as valid chunks of the upstream's kind. On BLOCK the choice ends with finish_reason
`content_filter` and a `guard` field; once every choice has ended the upstream call is dropped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from guard.decision import Action, CheckItem, Decision, Source
from guard.proxy.openai_api import CONTENT_FILTER
from guard.streaming.session import StreamSession, StreamUpdate
from guard.wire import decision_json

_BASE_FIELDS = ("id", "object", "created", "model", "system_fingerprint", "service_tier")


@dataclass(frozen=True)
class AnswerKind:
    """Where an answer of one endpoint holds its text: chat (`message` / `delta` `.content`) or
    legacy completions (`text`)."""

    chat: bool

    def streamed_text(self, choice: dict) -> str:
        if self.chat:
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else None
        else:
            text = choice.get("text")
        return text if isinstance(text, str) else ""

    def whole_text(self, choice: dict) -> str | None:
        if self.chat:
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else None
        else:
            text = choice.get("text")
        return text if isinstance(text, str) else None

    def replace_whole_text(self, choice: dict, text: str) -> dict:
        if self.chat:
            return {**choice, "message": {**choice.get("message", {}), "content": text}}
        return {**choice, "text": text}

    def text_choice(self, index: int, text: str, finish_reason: str | None = None) -> dict:
        if self.chat:
            return {
                "index": index,
                "delta": {"content": text} if text else {},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        return {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}

    def other_delta(self, choice: dict) -> dict | None:
        """A chat delta's fields besides its text (role, tool calls, refusal), passed on at once."""
        if not self.chat or not isinstance(choice.get("delta"), dict):
            return None
        rest = {k: v for k, v in choice["delta"].items() if k != "content"}
        return rest or None


CHAT = AnswerKind(chat=True)
COMPLETION = AnswerKind(chat=False)


def guard_field(input_decision: Decision | None, output: Decision | None) -> dict[str, Any]:
    """The `guard` field: the most severe action and both rails' decisions."""
    decisions = [d for d in (input_decision, output) if d is not None]
    action = max((d.action for d in decisions), key=lambda a: a.severity, default=Action.ALLOW)
    return {
        "action": action.value,
        "input": decision_json(input_decision) if input_decision is not None else None,
        "output": decision_json(output) if output is not None else None,
    }


@dataclass
class _Choice:
    session: StreamSession
    sent: int = 0  # characters of the session's text already sent to the client
    done: bool = False


@dataclass
class StreamRail:
    """Supervises one streamed answer. Feed it the upstream's chunks (`chunk`), then `end()`; each
    returns the chunks to send to the client. `finished` turns true once every expected choice has
    ended (the upstream call may be dropped)."""

    engine: Any
    item: CheckItem  # policy, tenant and request id of the request; source llm
    kind: AnswerKind
    prompt: str = ""
    choices_expected: int = 1
    input_decision: Decision | None = None
    _choices: dict[int, _Choice] = field(default_factory=dict)
    _base: dict[str, Any] = field(default_factory=dict)
    _trailing: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.item = dataclasses.replace(self.item, source=Source.LLM)
        self._open(0)  # the first session opens before the upstream is called: a full service says so now

    @property
    def finished(self) -> bool:
        done = sum(c.done for c in self._choices.values())
        return done >= max(self.choices_expected, 1)

    def output_decision(self) -> Decision | None:
        """The most severe final decision over the choices (None before any ended)."""
        outcomes = [c.session.outcome for c in self._choices.values() if c.session.outcome is not None]
        return max(outcomes, key=lambda d: d.action.severity, default=None)

    async def chunk(self, chunk: dict) -> list[dict]:
        self._base = {k: chunk[k] for k in _BASE_FIELDS if k in chunk} or self._base
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            self._trailing.append(chunk)  # usage and other choice-less chunks go out at the end
            return []
        # fields beside the choices (usage, on some servers' last chunk) go on our final chunk
        extra = {k: v for k, v in chunk.items() if k not in _BASE_FIELDS and k != "choices"}
        out: list[dict] = []
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            state = self._choices.get(index) or self._open(index)
            if state.done:
                continue
            other = self.kind.other_delta(choice)
            if other is not None:
                out.append(
                    self._chunk({"index": index, "delta": other, "logprobs": None, "finish_reason": None})
                )
            text = self.kind.streamed_text(choice)
            if text:
                out += self._apply(index, state, await state.session.feed(text))
            if not state.done and choice.get("finish_reason"):
                out += self._apply(index, state, await state.session.finish(), choice["finish_reason"])
                if out and not self._blocked():
                    out[-1].update(extra)
        return out

    async def end(self) -> list[dict]:
        """The upstream's stream ended: finish every open choice, then the held trailing chunks."""
        out: list[dict] = []
        for index, state in sorted(self._choices.items()):
            if not state.done:
                out += self._apply(index, state, await state.session.finish(), "stop")
        return out + ([] if self._blocked() else self._trailing)

    def close(self) -> None:
        for state in self._choices.values():
            state.session.close()

    # ------------------------------------------------------------------------------------------
    def _open(self, index: int) -> _Choice:
        state = _Choice(self.engine.open_stream(self.item, self.prompt))
        self._choices[index] = state
        return state

    def _blocked(self) -> bool:
        decision = self.output_decision()
        return decision is not None and decision.action is Action.BLOCK

    def _apply(
        self, index: int, state: _Choice, updates: list[StreamUpdate], finish_reason: str = "stop"
    ) -> list[dict]:
        out = []
        for update in updates:
            text = state.session.tokens.text[state.sent : update.released_until]
            if text:
                out.append(self._chunk(self.kind.text_choice(index, text)))
                state.sent = update.released_until
            if update.final:
                state.done = True
                decision = update.decision
                reason = (
                    CONTENT_FILTER
                    if decision is not None and decision.action is Action.BLOCK
                    else finish_reason
                )
                final = self._chunk(self.kind.text_choice(index, "", reason))
                final["guard"] = guard_field(self.input_decision, decision)
                out.append(final)
        # stream_first releases what arrived at once, also when no window came due with it
        released = state.session.released
        if not state.done and released > state.sent:
            out.append(
                self._chunk(self.kind.text_choice(index, state.session.tokens.text[state.sent : released]))
            )
            state.sent = released
        return out

    def _chunk(self, choice: dict) -> dict:
        return {**self._base, "choices": [choice]}


async def judge_whole_answer(
    engine,
    item: CheckItem,
    body: dict,
    kind: AnswerKind,
    input_decision: Decision | None,
    deadline: float | None,
) -> tuple[dict, Decision | None]:
    """A non-streamed answer: every choice's text checked with source=llm; a BLOCKed choice's text
    becomes the policy's `block_message` with finish_reason `content_filter`. Returns the body with
    a `guard` field and the most severe output decision."""
    choices = body.get("choices")
    if not isinstance(choices, list):
        return body, None
    item = dataclasses.replace(item, source=Source.LLM)
    judged = [(i, kind.whole_text(c)) for i, c in enumerate(choices) if isinstance(c, dict)]
    judged = [(i, text) for i, text in judged if text]
    if not judged:
        return {**body, "guard": guard_field(input_decision, None)}, None
    live = engine.live  # the decisions and the block message come from one configuration
    decisions = await engine.check_many(
        [dataclasses.replace(item, text=text) for _, text in judged],
        deadline,
        batch_field=None,
        transport="http",
        live=live,
    )
    policy = live.policies.select(item.policy, item.tenant)
    new_choices = list(choices)
    for (i, _), decision in zip(judged, decisions):
        if decision.action is Action.BLOCK:
            choice = kind.replace_whole_text(choices[i], policy.config.block_message)
            new_choices[i] = {**choice, "finish_reason": CONTENT_FILTER}
    worst = max(decisions, key=lambda d: d.action.severity)
    return {**body, "choices": new_choices, "guard": guard_field(input_decision, worst)}, worst
