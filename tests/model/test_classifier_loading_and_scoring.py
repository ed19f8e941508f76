"""Loading any HF sequence classifier folder and scoring texts with it (real models)."""

import numpy as np
import pytest
import torch

from guard.backends.torch_backend import choose_placement
from guard.errors import ConfigError
from guard.model import Classifier, content_hash
from tests.support.models import SAFETY_LABELS, build_tiny_bert, label_scores


def test_labels_come_from_id2label_and_multi_label_uses_sigmoid(tiny_model_dir):
    c = Classifier.from_path(tiny_model_dir, device="cpu")
    assert c.labels == list(SAFETY_LABELS) and c.multi_label
    scores = label_scores(c, ["hello there"])[0]
    assert list(scores) == list(SAFETY_LABELS)
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert abs(sum(scores.values()) - 1.0) > 0.05  # independent sigmoids, not a distribution


def test_single_label_model_uses_softmax(tiny_single_label_dir):
    c = Classifier.from_path(tiny_single_label_dir, device="cpu")
    assert c.labels == ["safe", "unsafe"] and not c.multi_label
    for scores in label_scores(c, ["hello there", "another text entirely"]):
        assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)


def test_packaged_minilm_encoder_with_a_head_loads_and_scores(minilm_model_dir):
    c = Classifier.from_path(minilm_model_dir, device="cpu")
    config = c.backend.model.config
    assert config.hidden_size == 384 and config.num_hidden_layers == 6
    assert c.labels == list(SAFETY_LABELS)
    assert c.backend.placement.dtype == torch.float32 and c.backend.placement.device.type == "cpu"
    assert c.window_tokens == 256
    a, b = label_scores(c, ["please reset my password", "the weather is lovely today"])
    assert a != b


def test_identical_inputs_in_one_batch_get_identical_scores(minilm_model_dir):
    c = Classifier.from_path(minilm_model_dir, device="cpu")
    texts = ["a short one", "the same sentence repeated in a batch", "x " * 90]
    windows = [w for per_text in c.encode(texts + texts[1:2]) for w in per_text]
    probs = c.forward(windows)  # padded to the longest window in the batch
    np.testing.assert_allclose(probs[1], probs[3], atol=1e-6)
    alone = c.forward([windows[1]])  # no padding at all
    np.testing.assert_allclose(probs[1], alone[0], atol=1e-5)


def test_long_input_is_windowed_and_scored_as_the_max_over_windows(tiny_model_dir):
    c = Classifier.from_path(tiny_model_dir, device="cpu", max_window_tokens=32, overlap_tokens=8)
    text = " ".join(f"word{i}" for i in range(200))
    (windows,) = c.encode([text])
    assert len(windows) > 3 and all(len(w) <= 32 for w in windows)
    assert all(w[0] == c.tokenizer.cls_token_id and w[-1] == c.tokenizer.sep_token_id for w in windows)
    n_tokens = len(c.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert sum(len(w) - 2 for w in windows) >= n_tokens  # every token is scored, none truncated
    per_window = np.stack([c.forward([w])[0] for w in windows])
    expected = per_window.max(axis=0)
    got = label_scores(c, [text])[0]
    np.testing.assert_allclose([got[label] for label in c.labels], expected, atol=1e-5)


def test_window_is_capped_by_the_models_position_limit(tmp_path):
    folder = build_tiny_bert(tmp_path / "m", max_positions=48)
    c = Classifier.from_path(folder, device="cpu", max_window_tokens=256, overlap_tokens=8)
    assert c.window_tokens == 48
    (windows,) = c.encode(["word " * 300])
    assert max(len(w) for w in windows) == 48
    c.forward(windows)  # would raise if a window exceeded the position embeddings


def test_model_id_is_a_content_hash_of_the_weights(tmp_path):
    a = build_tiny_bert(tmp_path / "a", seed=1)
    b = build_tiny_bert(tmp_path / "b", seed=1)
    c = build_tiny_bert(tmp_path / "c", seed=2)
    assert content_hash(a) == content_hash(b) != content_hash(c)
    assert Classifier.from_path(a, device="cpu").model_id.endswith(content_hash(a))


def test_not_a_model_folder_is_a_clear_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no config.json"):
        Classifier.from_path(tmp_path, device="cpu")


def test_placement_is_cpu_float32_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    p = choose_placement("auto", "auto")
    assert (p.device.type, p.dtype) == ("cpu", torch.float32)
    with pytest.raises(ConfigError, match="cuda"):
        choose_placement("cuda", "auto")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_uses_half_precision_and_matches_cpu(minilm_model_dir):
    gpu = Classifier.from_path(minilm_model_dir, device="cuda")
    assert gpu.backend.placement.dtype in (torch.bfloat16, torch.float16)
    cpu = Classifier.from_path(minilm_model_dir, device="cpu")
    texts = ["hello there", "a somewhat longer sentence about billing and refunds"]
    for g, c in zip(label_scores(gpu, texts), label_scores(cpu, texts)):
        assert max(abs(g[k] - c[k]) for k in g) < 0.02
