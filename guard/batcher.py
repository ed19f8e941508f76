"""Dynamic batching in front of the model.

Callers on any thread (the gRPC event loop, the Kafka consumer) `submit` texts and get a
`concurrent.futures.Future`. One dedicated model thread drains the queue, tokenizes what arrived,
forms a batch under a token budget from texts of similar length (the oldest waiting text always
goes in, so nothing starves), and runs it on the classifier's backend (`guard.backends`): unpadded
where the backend allows (see `guard.unpadded`), else in length-sorted passes padded to their own
longest window.
Texts whose caller cancelled, or whose deadline passed, are dropped before the forward pass.

Each model batch is a `guard.batch` span (its own trace) linked to the decision spans it served,
and feeds the batch, queue, tokenizer and inference metrics.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

import numpy as np
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext, Tracer

from guard.decision import Timing
from guard.errors import DeadlineExceeded, ModelFailure, NotReady, Overloaded
from guard.metrics import Metrics
from guard.model import Classifier
from guard.routing import pool_windows

log = logging.getLogger(__name__)

BATCH_SPAN = "guard.batch"


@dataclass(frozen=True)
class Scored:
    """Scores of one text, by model label, and where its time went."""

    scores: dict[str, float]
    timing: Timing
    embedding: np.ndarray | None = None  # the text's sentence embedding, when routing is on
    batch: SpanContext | None = None  # the `guard.batch` span that scored it


@dataclass(eq=False)
class _Job:
    text: str
    future: Future
    deadline: float | None  # time.monotonic() seconds
    link: SpanContext | None = None  # the decision span this job serves
    enqueued: float = field(default_factory=time.monotonic)
    windows: list[list[int]] = field(default_factory=list)
    longest: int = 0
    tokens: int = 0  # over all its windows
    tokenize_ms: float = 0.0

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline


class Batcher:
    def __init__(
        self,
        classifier: Classifier,
        max_batch_tokens: int = 8192,
        max_batch_size: int = 64,
        max_wait_ms: float = 0.0,
        queue_size: int = 1024,
        embedder: Callable[[list[list[int]]], np.ndarray] | None = None,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        """`embedder` gives sentence embeddings of windows for a classifier whose own pass
        gives none (a separate pass); None = only what `classifier.infer` returns."""
        self.classifier = classifier
        self._backend = classifier.info  # what runs the batches, for their spans
        self.embedder = embedder
        self.metrics = metrics or Metrics()
        self.tracer = tracer or trace.get_tracer("guard")
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.queue_size = queue_size
        self._cond = threading.Condition()
        self._intake: deque[_Job] = deque()
        self._outstanding = 0  # submitted and not yet finished: the bounded quantity
        self._accepting = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._accepting, self._stopping = True, False
        self._thread = threading.Thread(target=self._run, name="guard-model", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop accepting, finish everything already accepted, join the thread. True if it ended."""
        with self._cond:
            self._accepting = False
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def depth(self) -> int:
        """Texts submitted and not yet answered."""
        return self._outstanding

    # --- submitting ----------------------------------------------------------------------------
    def submit(
        self,
        texts: list[str],
        deadline: float | list[float | None] | None = None,
        links: list[SpanContext] | None = None,
    ) -> list[Future]:
        """Queue texts (all or none); raises `Overloaded` when the queue cannot take them all.
        `deadline` is one for all or one per text; `links[i]` is the span the batch that scores
        `texts[i]` links to."""
        links = links or [None] * len(texts)
        deadlines = deadline if isinstance(deadline, list) else [deadline] * len(texts)
        return self._enqueue([_Job(t, Future(), d, link) for t, d, link in zip(texts, deadlines, links)])

    def submit_windows(
        self, windows: list[list[int]], links: list[SpanContext] | None = None
    ) -> list[Future]:
        """Queue already tokenized windows (special tokens included), one job each: stream
        supervision scores its own windows and shares the batches with everything else."""
        links = links or [None] * len(windows)
        return self._enqueue(
            [
                _Job("", Future(), None, link, windows=[w], longest=len(w), tokens=len(w))
                for w, link in zip(windows, links)
            ]
        )

    def _enqueue(self, jobs: list[_Job]) -> list[Future]:
        """Admit all the jobs or none (the queue bound counts every job not yet answered)."""
        with self._cond:
            if not self._accepting:
                raise NotReady("the model is not serving")
            if self._outstanding + len(jobs) > self.queue_size:
                raise Overloaded(f"queue full ({self.queue_size} texts waiting); retry later")
            self._intake.extend(jobs)
            self._outstanding += len(jobs)
            self._cond.notify()
        return [job.future for job in jobs]

    # --- the model thread ----------------------------------------------------------------------
    def _run(self) -> None:
        pending: list[_Job] = []
        while True:
            with self._cond:
                while not self._intake and not pending and not self._stopping:
                    self._cond.wait()
                if self._stopping and not self._intake and not pending:
                    return
                arrived = list(self._intake)
                self._intake.clear()
            arrived = self._sweep(arrived)
            if arrived:
                pending.extend(self._tokenize(arrived))
            pending = self._sweep(pending)
            if not pending:
                continue
            if self._should_wait(pending):
                with self._cond:
                    if not self._intake and not self._stopping:
                        self._cond.wait(self.max_wait - (time.monotonic() - pending[0].enqueued))
                continue
            batch, pending = self._select(pending)
            self._execute(batch)

    def _tokenize(self, jobs: list[_Job]) -> list[_Job]:
        """Tokenize the jobs that came as text; returns the jobs ready to batch."""
        texts = [job for job in jobs if not job.windows]  # stream windows come tokenized
        if not texts:
            return jobs
        start = time.perf_counter()
        try:
            encoded = self.classifier.encode([job.text for job in texts])
        except Exception:  # a tokenizer failure must not kill the model thread
            log.exception("tokenizer failed on a batch of %d texts", len(texts))
            self._finish(texts, error=ModelFailure("tokenizer failed"))
            return [job for job in jobs if job.windows]
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        self.metrics.tokenize_seconds.observe(elapsed_ms / 1000.0)
        for job, windows in zip(texts, encoded):
            job.windows = windows
            job.longest = max(len(w) for w in windows)
            job.tokens = sum(len(w) for w in windows)
            job.tokenize_ms = elapsed_ms
        return jobs

    def _sweep(self, pending: list[_Job]) -> list[_Job]:
        """Drop jobs whose caller cancelled or whose deadline passed."""
        now = time.monotonic()
        keep, dropped = [], []
        for job in pending:
            if job.future.cancelled():
                self.metrics.rejected.labels("cancelled").inc()
                dropped.append(job)
            elif job.expired(now):
                dropped.append(job)
            else:
                keep.append(job)
        if dropped:
            self._release(len(dropped))
            for job in dropped:
                if not job.future.cancelled():
                    with contextlib.suppress(InvalidStateError):  # the caller cancelled just now
                        job.future.set_exception(DeadlineExceeded("deadline passed while queued"))
        return keep

    def _should_wait(self, pending: list[_Job]) -> bool:
        if self._stopping or self.max_wait <= 0:
            return False
        if time.monotonic() - pending[0].enqueued >= self.max_wait:
            return False
        windows = sum(len(job.windows) for job in pending)
        cost = self.classifier.batch_tokens(
            windows, max(j.longest for j in pending), sum(j.tokens for j in pending)
        )
        return windows < self.max_batch_size and cost < self.max_batch_tokens

    def _select(self, pending: list[_Job]) -> tuple[list[_Job], list[_Job]]:
        """The oldest job plus the jobs closest to it in length, within the token budget."""
        anchor = pending[0]
        batch, windows, longest, tokens = [anchor], len(anchor.windows), anchor.longest, anchor.tokens
        for job in sorted(pending[1:], key=lambda j: abs(j.longest - anchor.longest)):
            n, top, total = windows + len(job.windows), max(longest, job.longest), tokens + job.tokens
            if (
                n <= self.max_batch_size
                and self.classifier.batch_tokens(n, top, total) <= self.max_batch_tokens
            ):
                batch.append(job)
                windows, longest, tokens = n, top, total
        chosen = set(map(id, batch))
        return batch, [job for job in pending if id(job) not in chosen]

    def _execute(self, batch: list[_Job]) -> None:
        started = time.monotonic()
        runnable = [job for job in batch if job.future.set_running_or_notify_cancel()]
        if len(runnable) < len(batch):
            self.metrics.rejected.labels("cancelled").inc(len(batch) - len(runnable))
            self._release(len(batch) - len(runnable))
        if not runnable:
            return
        windows = [w for job in runnable for w in job.windows]
        span = self._batch_span(runnable, started)
        t0 = time.perf_counter()
        try:
            probs, embeddings, padded = self._forward(windows)
        except Exception as exc:
            log.exception("model forward failed on a batch of %d windows", len(windows))
            self.metrics.model_failures.inc()
            span.set_status(trace.Status(trace.StatusCode.ERROR, "the model failed while scoring"))
            span.set_attribute("error.type", type(exc).__name__)
            span.end()
            self._finish(runnable, error=ModelFailure("the model failed while scoring"))
            return
        inference_ms = (time.perf_counter() - t0) * 1000.0
        done = time.monotonic()
        timings = [
            Timing(
                queue_ms=max(0.0, (started - job.enqueued) * 1000.0 - job.tokenize_ms),
                tokenize_ms=job.tokenize_ms,
                inference_ms=inference_ms,
                total_ms=(done - job.enqueued) * 1000.0,
                batch_size=len(runnable),
            )
            for job in runnable
        ]
        self._record_batch(span, timings, windows, padded)
        batch_context = span.get_span_context()
        results = []
        row = 0
        for job, timing in zip(runnable, timings):
            rows = probs[row : row + len(job.windows)]
            row += len(job.windows)
            embedding = None if embeddings is None else pool_windows(embeddings[row - len(job.windows) : row])
            results.append(Scored(self.classifier.scores_by_label(rows), timing, embedding, batch_context))
        # free the queue slots before waking the callers: a caller's next submit must find them free
        self._release(len(runnable))
        for job, result in zip(runnable, results):
            job.future.set_result(result)

    def _batch_span(self, jobs: list[_Job], started: float):
        """The batch's span: a root of its own trace, linked to every decision span it serves
        (one batch serves many traces, so it cannot be a child of one)."""
        links = [Link(job.link) for job in jobs if job.link is not None and job.link.is_valid]
        start_ns = time.time_ns() - int((time.monotonic() - started) * 1e9)
        return self.tracer.start_span(BATCH_SPAN, context=Context(), links=links, start_time=start_ns)

    def _record_batch(self, span, timings: list[Timing], windows: list[list[int]], padded: int) -> None:
        """The batch's metrics and span attributes, from the texts' timings; ends the span."""
        for timing in timings:
            self.metrics.queue_seconds.observe(timing.queue_ms / 1000.0)
        inference_ms = timings[0].inference_ms
        self.metrics.batch_size.observe(len(timings))
        self.metrics.batch_tokens.observe(padded)
        self.metrics.inference_seconds.observe(inference_ms / 1000.0)
        if span.is_recording():
            span.set_attributes(
                {
                    "guard.batch.size": len(timings),
                    "guard.batch.windows": len(windows),
                    "guard.batch.tokens": sum(len(w) for w in windows),
                    "guard.batch.padded_tokens": padded,
                    "guard.batch.queue_ms.max": round(max(t.queue_ms for t in timings), 3),
                    "guard.batch.tokenize_ms": round(max(t.tokenize_ms for t in timings), 3),
                    "guard.batch.inference_ms": round(inference_ms, 3),
                    "guard.device": self._backend.device,
                    "guard.backend": self._backend.kind,
                }
            )
        span.end()

    def _forward(self, windows: list[list[int]]) -> tuple[np.ndarray, np.ndarray | None, int]:
        """Score the windows as length-sorted forward passes (`Classifier.infer_in_passes`: one
        pass when the model runs unpadded, else the split that wastes the least compute, each
        padded only to its own longest window); embeddings from the separate `embedder` when the
        model's own pass gives none."""
        probs, embeddings, computed = self.classifier.infer_in_passes(
            windows, self.max_batch_size, self.max_batch_tokens
        )
        if embeddings is None and self.embedder is not None:
            embeddings = self.embedder(windows)
        return probs, embeddings, computed

    def _finish(self, jobs: list[_Job], error: Exception) -> None:
        self._release(len(jobs))
        for job in jobs:
            if not job.future.done() and (job.future.running() or job.future.set_running_or_notify_cancel()):
                job.future.set_exception(error)

    def _release(self, n: int) -> None:
        with self._cond:
            self._outstanding -= n
