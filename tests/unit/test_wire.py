"""guard.wire: the one place decisions become protobuf and JSON, light enough for codecs and clients."""

from __future__ import annotations

import subprocess
import sys

from guard.decision import Action, CategoryScore, Decision, Intent, Timing
from guard.wire import decision_json, decision_to_pb, timing_json


def test_the_wire_and_the_kafka_codec_import_neither_torch_nor_the_grpc_server():
    code = (
        "import sys, guard.wire, consumers.codec, guard.proxy.openai_api; "
        "bad = [m for m in ('torch', 'transformers', 'guard.engine', 'guard.server.app') if m in "
        "sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_decision_as_json_spells_every_field_as_the_proto_does():
    decision = Decision(
        action=Action.FLAG,
        categories=(CategoryScore("violence", 0.7, 0.5, True, Action.FLAG, 0.8),),
        reasons=("violence 0.70 >= 0.50",),
        policy="default",
        policy_version="3",
        rule="threshold",
        model="m@1",
        intent=Intent("billing", 0.61),
        trace_id="ab" * 16,
        timing=Timing(total_ms=2.5, batch_size=3),
    )
    body = decision_json(decision)
    assert body["action"] == "ACTION_FLAG" and body["degraded"] is False  # every field present
    assert body["categories"][0]["category"] == "violence" and body["categories"][0]["block_threshold"] == 0.8
    assert body["intent"] == {"route": "billing", "score": 0.61}
    assert body["policy_version"] == "3" and body["trace_id"] == "ab" * 16
    assert timing_json(decision.timing)["batch_size"] == 3
    assert decision_to_pb(decision).categories[0].triggered
