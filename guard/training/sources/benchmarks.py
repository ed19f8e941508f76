"""Public safety benchmarks, for testing only (data/benchmarks/, built by scripts/curate_data.py).

They are never trained on and never used to pick thresholds; their texts are also removed from
every training corpus (registry.py). Labels are mapped to guard's categories where the benchmark
has categories; otherwise an example is unsafe (labels = BINARY_UNSAFE) or benign."""

from __future__ import annotations

from guard.training.sources.base import DATA_DIR, Example, read_jsonl

BINARY_UNSAFE = frozenset({"unsafe"})  # an unsafe text whose benchmark gives no guard category
BENCH_DIR = DATA_DIR / "benchmarks"

OPENAI_CATEGORIES = {
    "S": "sexual",
    "S3": "sexual",
    "H": "hate",
    "H2": "hate",
    "V": "violence",
    "V2": "violence",
    "HR": "harassment",
    "SH": "self_harm",
}


def _rows(name: str) -> list[dict]:
    return read_jsonl(BENCH_DIR / f"{name}.jsonl", f"benchmark {name}")


def xstest_prompts() -> list[Example]:
    """XSTest v2 (CC-BY-4.0): 250 safe prompts that look unsafe ("How can I kill a Python
    process?") and 200 unsafe contrast prompts."""
    return [
        Example(
            r["text"],
            BINARY_UNSAFE if r["label"] == "unsafe" else frozenset(),
            "xstest",
            "test",
            tags=(r["type"],),
        )
        for r in _rows("xstest_prompts")
    ]


def xstest_answers() -> list[Example]:
    """Answers of GPT-4, Llama-2 and Mistral-Instruct to XSTest prompts (CC-BY-4.0), labelled by the
    authors: full compliance with an unsafe prompt is an unsafe answer; refusals and answers to safe
    prompts are benign; partial refusals of unsafe prompts are left out."""
    out = []
    for r in _rows("xstest_completions"):
        complied = r["final_label"].startswith("1_")
        if not r["prompt_safe"] and r["final_label"].startswith("3_"):
            continue
        unsafe = complied and not r["prompt_safe"]
        out.append(
            Example(
                r["text"],
                BINARY_UNSAFE if unsafe else frozenset(),
                "xstest-answers",
                "test",
                "llm",
                (r["model"], r["prompt_type"]),
            )
        )
    return out


def openai_moderation() -> list[Example]:
    """OpenAI's moderation evaluation set (MIT, 1,680 texts), its categories mapped to guard's."""
    return [
        Example(
            r["prompt"],
            frozenset(c for k, c in OPENAI_CATEGORIES.items() if r.get(k) == 1),
            "openai-moderation",
            "test",
        )
        for r in _rows("openai_moderation")
    ]


def simple_safety_tests() -> list[Example]:
    """SimpleSafetyTests (CC-BY-4.0): 100 clearly harmful prompts."""
    return [
        Example(r["text"], BINARY_UNSAFE, "simple-safety-tests", "test", tags=(r["harm_area"],))
        for r in _rows("simple_safety_tests")
    ]


def hatecheck() -> list[Example]:
    """HateCheck (CC-BY-4.0): 3,728 functional test cases of hate speech and non-hateful look-alikes."""
    return [
        Example(
            r["text"],
            frozenset({"hate"}) if r["label"] == "hateful" else frozenset(),
            "hatecheck",
            "test",
            tags=(r["functionality"],),
        )
        for r in _rows("hatecheck")
    ]


BENCHMARK_READERS = {
    "xstest": xstest_prompts,
    "xstest-answers": xstest_answers,
    "openai-moderation": openai_moderation,
    "simple-safety-tests": simple_safety_tests,
    "hatecheck": hatecheck,
}
