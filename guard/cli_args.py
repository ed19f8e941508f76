"""`guard`'s argument parser: the commands and their flags (every flag is also a setting)."""

from __future__ import annotations

import argparse

from guard import __version__
from guard.decision import SOURCE_NAMES


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML settings file (or GUARD_CONFIG)")
    parser.add_argument("--model", metavar="DIR", help="Hugging Face classifier folder (GUARD_MODEL)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="GUARD_DEVICE (default auto)")
    _backend_args(parser)


def _backend_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=["auto", "torch", "onnx"],
        help="what runs the model (GUARD_BACKEND; default auto: torch on a GPU, onnx on a CPU)",
    )
    parser.add_argument(
        "--quantize",
        choices=["auto", "none", "int8"],
        help="int8 weights on the CPU (GUARD_QUANTIZE; default auto: float32 today, see README Backends)",
    )


def model_flags(args: argparse.Namespace) -> dict:
    """The model flags given on the command line (unset ones leave the settings alone)."""
    return {"model": args.model, "device": args.device, "backend": args.backend, "quantize": args.quantize}


def _metrics_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="P",
        help="serve Prometheus /metrics on this port (GUARD_METRICS_PORT; bind address GUARD_METRICS_HOST, "
        "default 127.0.0.1; default: no endpoint)",
    )


def _target_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        metavar="HOST:PORT",
        help="ask a running guard server (plaintext) instead of loading the model here; sends the configured "
        "bearer token (GUARD_AUTH_TOKEN or GUARD_AUTH_TOKEN_FILE) when there is one",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guard",
        description="Content-safety decisions for chatbot traffic. Every flag is "
        "also a setting: GUARD_<NAME> in the environment or <name> in the --config YAML file.",
    )
    parser.add_argument("--version", action="version", version=f"guard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gRPC service (health and reflection included)")
    _config_args(serve)
    serve.add_argument("--host", help="bind address (GUARD_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="gRPC port (GUARD_PORT, default 50051; 0 = any free port)")
    serve.add_argument(
        "--http-port",
        type=int,
        metavar="P",
        help="also serve the HTTP API on this port (/v1/moderations; the OpenAI proxy with --upstream): "
        "GUARD_SERVE_HTTP=true and GUARD_PROXY_PORT",
    )
    serve.add_argument(
        "--upstream",
        metavar="BASE_URL",
        help="with --http-port: proxy this OpenAI-compatible LLM "
        "server, as `guard proxy` does (GUARD_PROXY_UPSTREAM)",
    )
    _metrics_arg(serve)

    proxy = sub.add_parser(
        "proxy",
        help="run the OpenAI-compatible guarding proxy in front of an LLM server (and /v1/moderations)",
        description="Serve OpenAI's HTTP API: chat and completion requests are checked (source user), "
        "sent to "
        "the upstream LLM server, and their answers supervised (source llm; streams cut at a BLOCK with "
        "finish_reason content_filter); /v1/moderations is answered by guard; other paths pass through.",
    )
    _config_args(proxy)
    proxy.add_argument(
        "--upstream",
        metavar="BASE_URL",
        help="the LLM server's OpenAI base URL, e.g. http://127.0.0.1:8000/v1 (GUARD_PROXY_UPSTREAM; "
        "unset: only /v1/moderations)",
    )
    proxy.add_argument("--host", help="bind address (GUARD_PROXY_HOST, default 127.0.0.1)")
    proxy.add_argument(
        "--port", type=int, help="HTTP port (GUARD_PROXY_PORT, default 8080; 0 = any free port)"
    )
    _metrics_arg(proxy)

    consume = sub.add_parser(
        "consume", help="run a Kafka consumer-group member: read message topics, write decision topics"
    )
    _config_args(consume)
    consume.add_argument(
        "--bootstrap-servers", metavar="HOST:PORT", help="brokers (GUARD_KAFKA_BOOTSTRAP_SERVERS)"
    )
    consume.add_argument("--topics", metavar="T1[,T2]", help="topics to read (GUARD_KAFKA_TOPICS)")
    consume.add_argument(
        "--decisions-topic", metavar="D", help="decision records (GUARD_KAFKA_DECISIONS_TOPIC)"
    )
    consume.add_argument(
        "--dead-letter-topic", metavar="X", help="refused records (GUARD_KAFKA_DEAD_LETTER_TOPIC)"
    )
    consume.add_argument("--group-id", metavar="G", help="consumer group (GUARD_KAFKA_GROUP_ID)")
    consume.add_argument(
        "--blocked-topic", metavar="B", help="BLOCK/FLAG decisions too (GUARD_KAFKA_BLOCKED_TOPIC)"
    )
    consume.add_argument(
        "--delivery",
        choices=["at_least_once", "exactly_once"],
        help="GUARD_KAFKA_DELIVERY (default at_least_once)",
    )
    _metrics_arg(consume)

    check = sub.add_parser("check", help="decide on one text and print the decision as JSON")
    check.add_argument("text", help="the text to check")
    check.add_argument("--source", choices=SOURCE_NAMES, default="user", help="who wrote it (default user)")
    check.add_argument("--policy", default="", help="policy name (default: the configured default)")
    check.add_argument("--tenant", default="", help="tenant, selects the tenant's policy when configured")
    _config_args(check)
    _target_arg(check)

    info = sub.add_parser("info", help="print the model, labels and policies as JSON")
    _config_args(info)
    _target_arg(info)

    train = sub.add_parser(
        "train",
        help="train the safety classifier (packaged MiniLM + the data under data/ and the packaged corpora)",
    )
    train.add_argument("--output", required=True, metavar="DIR", help="model folder to write")
    # defaults: guard.training.train.TrainConfig (not imported here: it needs torch)
    train.add_argument("--epochs", type=int, help="passes over the drawn data (default 5)")
    train.add_argument(
        "--trainable-layers",
        type=int,
        help="top encoder layers to fine-tune; the rest stay shared with routing (default 4)",
    )
    train.add_argument(
        "--mine-after", type=int, help="epochs before the hard-example round; 0: none (default 3)"
    )
    train.add_argument("--seed", type=int, help="random seed (default 13)")
    train.add_argument(
        "--base",
        metavar="DIR",
        help="what to start from: 'default' (train the shipped default model further) or a model "
        "folder (default: the packaged all-MiniLM-L6-v2 with a new head)",
    )
    train.add_argument(
        "--consistency-share",
        type=float,
        help="share of draws also read perturbed, with both readings' scores pulled together (default 0)",
    )
    train.add_argument(
        "--lr-scale",
        type=float,
        help="multiplies the learning rates (lower when training further; default 1)",
    )
    train.add_argument("--no-bf16", action="store_true", help="train in float32 (default: bfloat16 autocast)")
    train.add_argument("--limit", type=int, help="examples per corpus (a quick smoke run)")

    evaluate = sub.add_parser("eval", help="evaluate a model (metrics, thresholds, PR curves) or the routes")
    evaluate.add_argument("model", nargs="?", help="model folder, or 'default' for the embedded model")
    evaluate.add_argument(
        "--routes", action="store_true", help="route accuracy of the default routes on held-out utterances"
    )
    evaluate.add_argument(
        "--output", default="eval-report", metavar="DIR", help="report folder (default eval-report)"
    )
    evaluate.add_argument("--limit", type=int, help="examples per corpus and split (a quick smoke run)")
    _backend_args(evaluate)

    export = sub.add_parser(
        "export-onnx",
        help="write a model as an ONNX folder (model.onnx, config, tokenizer) for --backend onnx",
        description="Export the embedded default model (or a Hugging Face classifier folder) to ONNX: "
        "model.onnx with inputs input_ids and attention_mask and output logits (and, for the default "
        "model with --routing, the routing embeddings from the same pass), with its config.json and "
        "tokenizer. guard serve --model DIR runs the folder on ONNX Runtime.",
    )
    export.add_argument("--output", required=True, metavar="DIR", help="folder to write (replaced)")
    export.add_argument(
        "--model", metavar="DIR", help="Hugging Face classifier folder (default: embedded model)"
    )
    export.add_argument(
        "--quantize", choices=["none", "int8"], default="none", help="int8 weights (default none)"
    )
    export.add_argument(
        "--routing",
        action="store_true",
        help="default model only: also output the routing embedding of each window",
    )
    return parser
