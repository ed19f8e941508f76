"""One supervised LLM stream: deltas in, release offsets and decisions out.

The session feeds deltas to its `StreamScanner`, scores the windows that come due through the
engine's batcher (the same batches as unary checks), keeps the maximum score per label over all
windows, and lets the policy decide on those. In `hold` mode text is released once a window holding
it was scored safe; in `stream_first` mode all text received is released at once and a BLOCK tells
the client to retract. A BLOCK ends the stream; a FLAG is reported once and the stream goes on.
Every stream is one `apply_guardrail` span with a `guard.stream.window` child span per window.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import Span

from guard.decision import Action, CheckItem, Decision
from guard.errors import InvalidInput
from guard.policy import Policy, ReleaseMode
from guard.streaming.scanner import StreamScanner, Window
from guard.streaming.tokens import IncrementalTokens
from guard.text import check_text_chars
from guard.tracing import GUARDRAIL_SPAN, record_decision, trace_id_of

WINDOW_SPAN = "guard.stream.window"


@dataclass(frozen=True)
class StreamUpdate:
    """What the client may show (`released_until`, in characters of the concatenated deltas) and,
    when the running action changed or the stream ends, the decision."""

    released_until: int
    decision: Decision | None = None
    final: bool = False


class StreamSession:
    def __init__(self, engine, item: CheckItem, policy: Policy, prompt_chars: int = 0) -> None:
        self.engine = engine
        self.item = item
        self.policy = policy
        self.mode = policy.config.stream.release_mode(item.source.value)
        classifier = engine.classifier
        self.tokens = IncrementalTokens(classifier.tokenize_with_offsets)
        self.scanner = StreamScanner(self.tokens, policy.config.stream, classifier.content_tokens)
        self.max_chars = engine.settings.stream_max_chars
        self.scores: dict[str, float] = {}
        self.decision: Decision = policy.decide({}, item.source)
        self.released = 0
        self.outcome: Decision | None = None  # the final decision, once there is one
        self.closed = False
        self.on_close = lambda: None
        self.span: Span = engine.tracer.start_span(
            GUARDRAIL_SPAN,
            attributes={
                "guard.stream": True,
                "guard.stream.release_mode": self.mode.value,
                "guard.stream.prompt_chars": prompt_chars,
            },
        )

    # --- the client's messages -----------------------------------------------------------------
    async def feed(self, delta: str) -> list[StreamUpdate]:
        if len(self.tokens.text) + len(delta) > self.max_chars:
            raise InvalidInput(
                "delta", f"the stream is over stream_max_chars ({self.max_chars})", reason="stream_too_long"
            )
        check_text_chars(delta, "delta")
        windows = self.scanner.feed(delta)
        if self.mode is ReleaseMode.STREAM_FIRST:
            self.released = len(self.tokens.text)
        return await self._score(windows) if windows else []

    async def finish(self) -> list[StreamUpdate]:
        updates = await self._score(self.scanner.finish())
        if updates and updates[-1].final:
            return updates
        self.released = len(self.tokens.text)
        return [StreamUpdate(self.released, self._finished(), final=True)]

    def close(self) -> None:
        """Free the stream's state (also when the client went away mid-stream)."""
        if not self.closed:
            self.closed = True
            self.span.set_attribute("guard.stream.chars", len(self.tokens.text))
            self.span.set_attribute("guard.stream.windows", self.scanner.windows)
            self.span.end()
            outcome = self.outcome.action.value if self.outcome is not None else "aborted"
            self.engine.metrics.streams.labels(outcome).inc()
            if self.outcome is not None:
                self.engine.metrics.decision(self.outcome, self.item.source.value, "stream")
            self.on_close()

    # --- scoring -------------------------------------------------------------------------------
    async def _score(self, windows: list[Window]) -> list[StreamUpdate]:
        if not windows:
            return []
        results = await self.engine.score_windows(
            [list(w.ids) for w in windows], link=self.span.get_span_context()
        )
        before = self.decision.action
        for window, result in zip(windows, results):
            decision = self._after(window, result)
            if decision.action is Action.BLOCK:
                self.decision = decision
                return [StreamUpdate(self.released, self._finished(), final=True)]
            self.decision = decision
            if self.mode is ReleaseMode.HOLD:
                self.released = max(self.released, self.scanner.safe_through(window))
        changed = self.decision.action is not before
        return [StreamUpdate(self.released, self._stamped(self.decision) if changed else None)]

    def _after(self, window: Window, result) -> Decision:
        """The running decision once `window` is scored; its own span records the window."""
        text = self.tokens.text[window.char_start : window.char_end]
        with trace.use_span(self.span, end_on_exit=False):
            span = self.engine.tracer.start_span(
                WINDOW_SPAN,
                attributes={
                    "guard.window.index": window.index,
                    "guard.window.tokens": window.token_end - window.token_start,
                    "guard.window.char_start": window.char_start,
                    "guard.window.char_end": window.char_end,
                },
            )
        if getattr(result, "batch", None) is not None:
            span.add_link(result.batch)
        try:
            match = self.policy.match_lists(text)
            if match is not None and match.action is not Action.BLOCK:
                match = None  # an allowlist cannot clear a whole stream
            if not isinstance(result, BaseException):
                for label, score in result.scores.items():
                    self.scores[label] = max(score, self.scores.get(label, 0.0))
            outcome = result if isinstance(result, BaseException) else self.scores
            decision = self.policy.judge(self.item.source, match, outcome)
            span.set_attribute("guard.window.action", decision.action.value)
            if decision.categories:
                span.set_attribute("guard.window.top_category", decision.categories[0].category)
                span.set_attribute("guard.window.top_score", decision.categories[0].score)
            return decision
        finally:
            span.end()

    def _stamped(self, decision: Decision) -> Decision:
        return dataclasses.replace(
            decision, model=self.engine.classifier.model_id, trace_id=trace_id_of(self.span)
        )

    def _finished(self) -> Decision:
        """The final decision, recorded on the stream span."""
        decision = self._stamped(self.decision)
        item = dataclasses.replace(self.item, text=self.tokens.text)
        record_decision(self.span, item, decision, self.engine.content_chars)
        self.span.set_attribute("guard.stream.released_until", self.released)
        self.outcome = decision
        return decision
