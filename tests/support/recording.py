"""A real classifier that records the batches it runs and can be held or made to fail."""

from __future__ import annotations

import threading

from guard.model import Classifier


class RecordingClassifier(Classifier):
    """The real classifier, recording every batch it runs; `gate` can hold the model thread."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches: list[list[list[int]]] = []
        self.shapes: list[tuple[int, int]] = []
        self.threads: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_next = 0

    def encode(self, texts):
        self.threads.add(threading.current_thread().name)
        return super().encode(texts)

    def forward(self, windows):
        self.entered.set()
        self.gate.wait(10)
        self.threads.add(threading.current_thread().name)
        self.batches.append(windows)
        self.shapes.append((len(windows), max(len(w) for w in windows)))
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("injected fault")
        return super().forward(windows)

    def scored(self, text: str) -> bool:
        """Whether any forward pass so far included this text's first window."""
        window = self.encode([text])[0][0]
        return any(window in batch for batch in self.batches)

    @classmethod
    def load(cls, folder, unpadded: bool = True, **window) -> RecordingClassifier:
        base = Classifier.from_path(folder, device="cpu", unpadded=unpadded, **window)
        return cls(base.backend, base.tokenizer, base.model_id, source=base.source, **window)
