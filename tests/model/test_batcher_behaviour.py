"""The batcher on a real model: batching, token budget, length grouping, bounds and drops.

Most tests run the model padded, where length grouping and the padded-token budget matter; the
unpadded tests at the end check what changes when the model runs unpadded."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest

from guard.batcher import Batcher
from guard.errors import DeadlineExceeded, ModelFailure, NotReady, Overloaded
from tests.support.recording import RecordingClassifier


@pytest.fixture
def classifier(tiny_model_dir):
    return RecordingClassifier.load(tiny_model_dir, max_window_tokens=128, unpadded=False)


@pytest.fixture
def unpadded_classifier(tiny_model_dir):
    return RecordingClassifier.load(tiny_model_dir, max_window_tokens=128)


def make(classifier, **kwargs) -> Batcher:
    b = Batcher(classifier, **kwargs)
    b.start()
    return b


def words(n: int, tag: str = "w") -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def hold(classifier, batcher):
    """Occupy the model thread with one job so that later submissions queue up behind it."""
    classifier.gate.clear()
    classifier.entered.clear()
    first = batcher.submit(["hold the model thread"])[0]
    assert classifier.entered.wait(5)
    return first


def test_concurrent_submissions_share_batches_on_the_model_thread(classifier):
    b = make(classifier, max_wait_ms=50)
    futures = []
    threads = [
        threading.Thread(target=lambda i=i: futures.extend(b.submit([f"text number {i}"]))) for i in range(40)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [f.result(10) for f in futures]
    b.stop(5)
    assert len(results) == 40
    assert len(classifier.batches) <= 8  # 40 texts, not 40 forward passes
    assert classifier.threads == {"guard-model"}  # tokenizer and forward off the caller's thread


def test_batches_respect_the_token_budget_and_pad_to_their_own_longest(classifier):
    b = make(classifier, max_batch_tokens=512, max_batch_size=64)
    texts = [words(n) for n in (3, 10, 40, 90, 5, 60, 20, 100, 7, 33) * 3]
    for f in b.submit(texts):
        f.result(10)
    b.stop(5)
    for batch, (rows, cols) in zip(classifier.batches, classifier.shapes):
        assert rows * cols <= 512
        assert cols == max(len(w) for w in batch)  # the batch's own longest, no fixed padding
    assert min(cols for _, cols in classifier.shapes) < 128


def interleaved_behind_a_held_thread(classifier, n: int):
    """`n` short and long texts (interleaved) queued while the model thread is held, then run
    under a 1024-token budget; returns the texts and their results."""
    b = make(classifier, max_batch_tokens=1024, max_batch_size=64)
    first = hold(classifier, b)
    texts = [words(3, "s") if i % 2 == 0 else words(95, "l") for i in range(n)]
    futures = b.submit(texts)
    classifier.gate.set()
    first.result(10)
    results = [f.result(10) for f in futures]
    b.stop(5)
    return texts, results


def test_similar_lengths_are_grouped_together(classifier):
    interleaved_behind_a_held_thread(classifier, 40)
    for batch in classifier.batches[1:]:
        lengths = [len(w) for w in batch]
        assert max(lengths) - min(lengths) < 20, lengths  # never short and long in one batch


def test_full_queue_raises_overloaded_and_recovers(classifier):
    b = make(classifier, queue_size=4)
    first = hold(classifier, b)
    queued = b.submit(["a", "b", "c"])  # 1 running + 3 queued = 4
    with pytest.raises(Overloaded):
        b.submit(["one too many"])
    with pytest.raises(Overloaded):
        b.submit(["x", "y"])  # all or nothing
    assert b.depth == 4
    classifier.gate.set()
    for f in [first, *queued]:
        f.result(10)
    assert b.submit(["accepted again"])[0].result(10).scores
    b.stop(5)
    assert b.depth == 0


def test_expired_requests_are_dropped_before_inference(classifier):
    b = make(classifier)
    first = hold(classifier, b)
    late = b.submit(["zebra xylophone quartz"], deadline=time.monotonic() + 0.05)[0]
    on_time = b.submit(["on time text"])[0]
    time.sleep(0.15)
    classifier.gate.set()
    first.result(10)
    with pytest.raises(DeadlineExceeded):
        late.result(10)
    on_time.result(10)
    b.stop(5)
    assert not classifier.scored("zebra xylophone quartz") and b.depth == 0


def test_cancelled_requests_are_dropped_before_inference(classifier):
    b = make(classifier)
    first = hold(classifier, b)
    gone = b.submit(["caller went away"])[0]
    assert gone.cancel()
    classifier.gate.set()
    first.result(10)
    with pytest.raises(CancelledError):
        gone.result(0)
    assert b.submit(["next"])[0].result(10)
    b.stop(5)
    assert not classifier.scored("caller went away") and b.depth == 0


def test_a_failing_forward_fails_its_batch_and_the_thread_lives_on(classifier):
    b = make(classifier)
    classifier.fail_next = 1
    with pytest.raises(ModelFailure):
        b.submit(["this batch fails"])[0].result(10)
    assert b.submit(["this one works"])[0].result(10).scores
    b.stop(5)
    assert b.depth == 0


def test_stop_finishes_accepted_work_and_refuses_new(classifier):
    b = make(classifier)
    first = hold(classifier, b)
    queued = b.submit([f"queued {i}" for i in range(10)])
    stopper = threading.Thread(target=b.stop, args=(10,))
    stopper.start()
    time.sleep(0.05)
    with pytest.raises(NotReady):
        b.submit(["after stop"])
    classifier.gate.set()
    stopper.join(10)
    assert not stopper.is_alive()
    assert all(f.result(0).scores for f in [first, *queued])


def test_results_report_where_time_went(classifier):
    b = make(classifier)
    result = b.submit(["timing please"])[0].result(10)
    b.stop(5)
    t = result.timing
    assert t.inference_ms > 0 and t.tokenize_ms > 0 and t.batch_size == 1
    assert t.total_ms >= t.inference_ms


def test_one_text_longer_than_the_budget_runs_in_parts(classifier):
    b = make(classifier, max_batch_tokens=256, max_batch_size=2)
    result = b.submit([words(1000)])[0].result(20)
    b.stop(5)
    assert set(result.scores) == set(classifier.labels)
    assert all(rows <= 2 for rows, _ in classifier.shapes)


def test_unpadded_batches_mix_lengths_in_one_pass_within_the_real_token_budget(unpadded_classifier):
    classifier = unpadded_classifier
    assert classifier.execution == "unpadded"
    texts, results = interleaved_behind_a_held_thread(classifier, 20)
    passes = classifier.batches[1:]
    assert all(sum(len(w) for w in batch) <= 1024 for batch in passes)  # real tokens, not rows x longest
    assert any(
        min(map(len, batch)) < 10 and max(map(len, batch)) > 90 for batch in passes
    )  # no padding to fear
    total = sum(len(w) for ws in classifier.encode(texts) for w in ws)
    assert (
        len(passes) <= -(-total // 1024) + 1
    )  # about as few passes as the budget allows, not one per length
    assert results[0].scores == results[2].scores  # identical texts, identical scores wherever they ran


def test_unpadded_results_equal_padded_results(classifier, unpadded_classifier):
    texts = [words(n) for n in (3, 10, 40, 90, 5, 60, 20, 100, 7, 33)]
    out = []
    for c in (classifier, unpadded_classifier):
        b = make(c)
        out.append([f.result(10).scores for f in b.submit(texts)])
        b.stop(5)
    for padded, unpadded in zip(*out):
        assert padded.keys() == unpadded.keys()
        assert all(abs(padded[k] - unpadded[k]) < 1e-5 for k in padded)
