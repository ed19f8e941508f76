"""The one engine behind every entry point: validate -> policy lists -> batcher -> policy -> span."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Tracer

from guard import __version__
from guard.batcher import Batcher, Scored
from guard.decision import CheckItem, Decision, Source, check_id_length
from guard.errors import DeadlineExceeded, GuardError, InvalidInput, ModelFailure, NotReady, Overloaded
from guard.metrics import Metrics
from guard.model import Classifier, load_classifier
from guard.policy import Policy, PolicySet
from guard.settings import Settings
from guard.text import check_text_chars, readable
from guard.tracing import GUARDRAIL_SPAN, TRACER_NAME, record_decision, record_failure, trace_id_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineInfo:
    model: str
    model_path: str
    labels: tuple[str, ...]
    multi_label: bool
    device: str
    dtype: str
    backend: str  # "torch" | "onnx"
    quantization: str  # "none" | "int8"
    execution: str  # "unpadded" | "padded (why)"
    max_window_tokens: int
    policies: tuple[tuple[str, str, tuple[str, ...]], ...]  # (name, version, categories)
    default_policy: str
    max_text_chars: int
    max_batch_items: int
    version: str = __version__


@dataclass(frozen=True)
class LiveConfig:
    """The configuration a reload may replace while guard serves."""

    policies: PolicySet
    router: object | None  # guard.routing.Router


class Engine:
    """Build it (validates the policies), then `start()` loads and warms the model off the event
    loop; until then every check answers `NotReady`."""

    def __init__(
        self,
        settings: Settings,
        classifier: Classifier | None = None,
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.classifier = classifier
        # what a config reload may change, swapped as one: a request reads it once (`live`)
        self.live = LiveConfig(
            PolicySet(settings.policies, settings.default_policy, settings.tenant_policies), None
        )
        self.batcher: Batcher | None = None
        self.tracer = tracer or trace.get_tracer(TRACER_NAME, __version__)
        self.content_chars = settings.trace_content_max_chars if settings.trace_content else None
        self.streams = 0  # open CheckStream sessions
        self.ready = False
        self.metrics = metrics or Metrics()
        self.metrics.track_queue_depth(lambda: self.batcher.depth if self.batcher else 0)
        self.metrics.track_streams(lambda: self.streams)

    @property
    def policies(self) -> PolicySet:
        return self.live.policies

    @property
    def router(self):
        return self.live.router

    def reconfigure(self, policies: PolicySet, router) -> None:
        """Swap the policy set and router at once (a config reload): a request already deciding
        keeps the pair it read; a stream keeps the policy it was opened with."""
        self.live = LiveConfig(policies, router)

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Load (if not given) and warm the model, then start the model thread. Blocking."""
        if self.settings.torch_threads:
            from guard.backends.torch_backend import set_cpu_threads

            set_cpu_threads(self.settings.torch_threads)
        if self.classifier is None:
            self.classifier = load_classifier(self.settings)
        if self.settings.warmup:
            self.classifier.warm_up()
        embedder = self._start_routing()
        self.batcher = Batcher(
            self.classifier,
            max_batch_tokens=self.settings.max_batch_tokens,
            max_batch_size=self.settings.max_batch_size,
            max_wait_ms=self.settings.max_wait_ms,
            queue_size=self.settings.queue_size,
            embedder=embedder,
            metrics=self.metrics,
            tracer=self.tracer,
        )
        self.batcher.start()
        self.metrics.serving(self.classifier.model_id, self.classifier.info)
        self.ready = True
        self.metrics.ready.set(1)

    def _start_routing(self):
        """Build the router. A classifier that gives embeddings in its own pass (the default
        model) also embeds the route examples; otherwise the packaged sentence encoder does, and
        is returned as the batcher's embedder, which decodes each window and embeds it separately."""
        if not (self.settings.routing and self.settings.routes):
            return None
        from guard.routing import Router

        if self.classifier.gives_embeddings:
            self.live = LiveConfig(
                self.policies,
                Router(self.settings.routes, self.classifier.embed_texts, self.settings.route_threshold),
            )
            return None
        from guard.embedding import SentenceEncoder

        encoder = SentenceEncoder()
        self.live = LiveConfig(
            self.policies,
            Router(self.settings.routes, encoder.embed, threshold=self.settings.route_threshold),
        )
        decode = self.classifier.tokenizer.batch_decode
        return lambda windows: encoder.embed(decode(windows, skip_special_tokens=True))

    def stop(self, timeout: float | None = None) -> bool:
        """Stop accepting and finish what was accepted."""
        self.ready = False
        self.metrics.ready.set(0)
        return self.batcher.stop(timeout) if self.batcher else True

    def _require_ready(self) -> None:
        if not self.ready:
            raise NotReady("not serving: the model is loading or the service is shutting down")

    def info(self) -> EngineInfo:
        self._require_ready()
        labels = self.classifier.labels
        backend = self.classifier.info
        return EngineInfo(
            model=self.classifier.model_id,
            model_path=self.classifier.source,
            labels=tuple(labels),
            multi_label=self.classifier.multi_label,
            device=backend.device,
            dtype=backend.dtype,
            backend=backend.kind,
            quantization=backend.quantization,
            execution=backend.execution,
            max_window_tokens=self.classifier.window_tokens,
            policies=tuple(
                (p.name, p.version, tuple(p.categories_for(labels))) for p in self.policies.policies.values()
            ),
            default_policy=self.policies.default,
            max_text_chars=self.settings.max_text_chars,
            max_batch_items=self.settings.max_batch_items,
        )

    # --- validation ----------------------------------------------------------------------------
    def validate(self, item: CheckItem, prefix: str = "", policies: PolicySet | None = None) -> Policy:
        """Check one item and return the policy that will decide it; raises `InvalidInput`."""
        self._validate_text(item, prefix)
        return self.validate_fields(item, prefix, policies)

    def _validate_text(self, item: CheckItem, prefix: str) -> None:
        if not readable(item.text):  # empty, or only whitespace and removed characters
            raise InvalidInput(prefix + "text", "must not be empty", reason="empty_text")
        if len(item.text) > self.settings.max_text_chars:
            raise InvalidInput(
                prefix + "text",
                f"is {len(item.text)} characters; the limit is {self.settings.max_text_chars}",
                reason="text_too_long",
            )
        check_text_chars(item.text, prefix + "text")

    def validate_fields(self, item: CheckItem, prefix: str = "", policies: PolicySet | None = None) -> Policy:
        """Everything but the text: source, ids, and the policy it selects."""
        if not isinstance(item.source, Source):
            raise InvalidInput(prefix + "source", f"unknown source {item.source!r}", reason="unknown_source")
        for name in ("request_id", "tenant", "policy"):
            check_id_length(prefix + name, getattr(item, name))
        try:
            return (policies or self.policies).select(item.policy, item.tenant)
        except InvalidInput as exc:
            raise InvalidInput(prefix + exc.field, exc.problem, exc.reason) from None

    # --- deciding ------------------------------------------------------------------------------
    async def check(self, item: CheckItem, deadline: float | None = None) -> Decision:
        return (await self.check_many([item], deadline, batch_field=None))[0]

    async def check_many(
        self,
        items: Sequence[CheckItem],
        deadline: float | None = None,
        batch_field: str | None = "requests",
        parents: Sequence[Context | None] | None = None,
        transport: str = "grpc",
        live: LiveConfig | None = None,
    ) -> list[Decision]:
        """Decide on every item, in order. `deadline` is a `time.monotonic()` instant.

        Errors name the offending field (`requests[3].text` when `batch_field` is set). Each
        decision span is a child of the current span, or of `parents[i]` when given (the Kafka
        runner's per-record `process` spans). `transport` labels the metrics. `live` is the
        configuration to decide with (default: the current one), for a caller that reads more
        of it afterwards."""
        arrived = time.monotonic()
        live = live or self.live  # one policy set and router for the whole call, whatever a reload does
        try:
            self._require_ready()
            policies = [
                self.validate(item, f"{batch_field}[{i}]." if batch_field else "", live.policies)
                for i, item in enumerate(items)
            ]
        except GuardError as exc:
            self._count_rejected(exc, len(items))
            raise
        contexts = parents if parents is not None else [None] * len(items)
        spans = [self.tracer.start_span(GUARDRAIL_SPAN, context=parent) for parent in contexts]
        try:
            decisions = await self._decide(
                items, policies, self._deadlines(policies, deadline, arrived), spans, live.router
            )
        except BaseException as exc:
            self._count_rejected(exc, len(items))
            for span in spans:
                record_failure(span, exc)
                span.end()
            raise
        out = []
        elapsed = time.monotonic() - arrived
        for item, decision, span in zip(items, decisions, spans):
            decision = dataclasses.replace(decision, trace_id=trace_id_of(span))
            record_decision(span, item, decision, self.content_chars)
            span.end()
            self.metrics.decision(decision, item.source.value, transport)
            self.metrics.decision_seconds.labels(transport).observe(elapsed)
            out.append(decision)
        return out

    def _count_rejected(self, error: BaseException, texts: int) -> None:
        """`guard_rejected_total` by the error's kind. A caller that went away (its task cancelled)
        is not counted here: the batcher counts its texts as `cancelled` when it drops them."""
        if not isinstance(error, asyncio.CancelledError):
            self.metrics.rejected.labels(getattr(error, "kind", "internal")).inc(texts)

    def _deadlines(self, policies: list[Policy], caller: float | None, arrived: float) -> list[float | None]:
        """Per text, when to stop waiting for its scores and decide by the policy's fail mode:
        `deadline_margin_ms` before the caller's deadline, or the policy's `timeout_ms` after
        arrival, whichever comes first (None: no limit)."""
        limit = None if caller is None else caller - self.settings.deadline_margin_ms / 1000.0
        out = []
        for policy in policies:
            own = policy.config.timeout_ms
            own = None if own is None else arrived + own / 1000.0
            out.append(min((d for d in (limit, own) if d is not None), default=None))
        return out

    async def _decide(
        self,
        items: Sequence[CheckItem],
        policies: list[Policy],
        deadlines: list[float | None],
        spans: list,
        router,
    ) -> list[Decision]:
        decisions: list[Decision | None] = []
        to_score: list[int] = []
        now = time.monotonic()
        for i, (item, policy) in enumerate(zip(items, policies)):
            match = policy.match_lists(item.text)
            if match:
                decisions.append(policy.judge(item.source, match, {}))
            elif deadlines[i] is not None and deadlines[i] <= now:  # no time left: never queued
                decisions.append(
                    self._decision_from(item, policy, DeadlineExceeded("no time left to score"), router)
                )
            else:
                decisions.append(None)
                to_score.append(i)
        if to_score:
            links = [spans[i].get_span_context() for i in to_score]
            texts = [items[i].text for i in to_score]
            futures = self.batcher.submit(texts, [deadlines[i] for i in to_score], links)
            results = await asyncio.gather(*(_settle(f, deadlines[i]) for f, i in zip(futures, to_score)))
            for i, result in zip(to_score, results):
                if isinstance(result, Scored) and result.batch is not None:
                    spans[i].add_link(result.batch)
                decisions[i] = self._decision_from(items[i], policies[i], result, router)
        return decisions  # type: ignore[return-value]

    def _decision_from(
        self, item: CheckItem, policy: Policy, result: Scored | BaseException, router
    ) -> Decision:
        """`policy.judge` on a batcher result, plus what only a scored text has (timing, intent)."""
        if isinstance(result, BaseException) and not isinstance(result, ModelFailure | DeadlineExceeded):
            raise result
        decision = policy.judge(
            item.source, None, result if isinstance(result, BaseException) else result.scores
        )
        if isinstance(result, Scored):
            decision = dataclasses.replace(decision, timing=result.timing)
            if router is not None and result.embedding is not None and item.source is Source.USER:
                decision = dataclasses.replace(decision, intent=router.route(result.embedding))
        return dataclasses.replace(decision, model=self.classifier.model_id)

    # --- streams -------------------------------------------------------------------------------
    def open_stream(self, item: CheckItem, prompt: str = "", prefix: str = "open."):
        """A `StreamSession` for one supervised stream (its text arrives later as deltas)."""
        from guard.streaming.session import StreamSession

        self._require_ready()
        policy = self.validate_fields(item, prefix)
        if len(prompt) > self.settings.max_text_chars:
            raise InvalidInput(
                prefix + "prompt",
                f"is {len(prompt)} characters; the limit is {self.settings.max_text_chars}",
                reason="text_too_long",
            )
        check_text_chars(prompt, prefix + "prompt")
        if self.streams >= self.settings.max_streams:
            self.metrics.rejected.labels(Overloaded.kind).inc()
            raise Overloaded(f"{self.settings.max_streams} streams are open; retry later")
        self.streams += 1
        session = StreamSession(self, item, policy, prompt_chars=len(prompt))
        session.on_close = self._stream_closed
        return session

    def _stream_closed(self) -> None:
        self.streams -= 1

    async def score_windows(self, windows: list[list[int]], link=None) -> list[Scored | BaseException]:
        """Scores of already tokenized windows (special tokens added here), through the batcher;
        the batches link to the span context `link` (the stream's span)."""
        self._require_ready()
        self.metrics.stream_windows.inc(len(windows))
        links = [link] * len(windows) if link is not None else None
        futures = self.batcher.submit_windows([self.classifier.wrap(w) for w in windows], links=links)
        return await asyncio.gather(*(_settle(f) for f in futures))


async def _settle(future: Future, deadline: float | None = None) -> Scored | BaseException:
    """Await a batcher future until `deadline`; a model failure or a deadline that passed comes
    back as a value so each item can fall back. A text still queued at its deadline is dropped by
    the batcher (it carries the same deadline) before inference; a caller that goes away cancels it."""
    wrapped = asyncio.wrap_future(future)
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        done, _ = await asyncio.wait({wrapped}, timeout=timeout)
    except asyncio.CancelledError:
        wrapped.cancel()
        raise
    if not done:
        wrapped.add_done_callback(_consume)
        return DeadlineExceeded("not scored before the deadline")
    try:
        return wrapped.result()
    except (ModelFailure, DeadlineExceeded) as exc:
        return exc


def _consume(future: asyncio.Future) -> None:
    """Retrieve a late result nobody waits for any more (no 'never retrieved' warning)."""
    if not future.cancelled():
        future.exception()


def deadline_after(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds
