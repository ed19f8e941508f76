"""`guard` command line: serve, proxy, consume, check, info, train, eval, export-onnx (the parser
is `guard.cli_args`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from google.protobuf import json_format

from guard.cli_args import build_parser, model_flags
from guard.decision import CheckItem, Source
from guard.errors import ConfigError, GuardError
from guard.settings import Settings, load_settings

log = logging.getLogger("guard")


def _settings(args: argparse.Namespace, **extra) -> Settings:
    return load_settings(args.config, **model_flags(args), **extra)


def _reloader(args: argparse.Namespace, engine, **extra):
    """Watches the --config file (or GUARD_CONFIG) while serving; None without one."""
    from guard.reload import ConfigReloader, ConfigSource

    source = ConfigSource.of(args.config, **model_flags(args), **extra)
    return (
        None if source is None else ConfigReloader(engine, source, engine.settings.config_reload_interval_s)
    )


def _print_message(message) -> None:
    print(json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True), indent=2))


def _run_service(args: argparse.Namespace, flags: dict, transports) -> int:
    """Settings from the flags, tracing, one engine, and the transports `transports(settings,
    engine)` builds, run as one `guard.lifecycle.Service` until SIGTERM (the config file watched)."""
    from guard.engine import Engine
    from guard.lifecycle import Service
    from guard.tracing import configure_tracing

    settings = _settings(args, **flags)
    logging.getLogger().setLevel(settings.log_level)
    provider = configure_tracing(settings)
    engine = Engine(settings)

    async def run() -> None:  # transports are built inside the loop they serve on (grpc.aio binds to it)
        await Service(settings, engine, transports(settings, engine), _reloader(args, engine, **flags)).run()

    try:
        asyncio.run(run())
    finally:
        provider.shutdown()
    return 0


def _serve(args: argparse.Namespace) -> int:
    from guard.server.app import serve_transports

    http = {"serve_http": True, "proxy_port": args.http_port} if args.http_port is not None else {}
    flags = {
        "host": args.host,
        "port": args.port,
        "metrics_port": args.metrics_port,
        "proxy_upstream": args.upstream,
        **http,
    }
    return _run_service(args, flags, serve_transports)


def _proxy(args: argparse.Namespace) -> int:
    from guard.proxy.server import HttpTransport

    flags = {
        "proxy_upstream": args.upstream,
        "proxy_host": args.host,
        "proxy_port": args.port,
        "metrics_port": args.metrics_port,
    }
    return _run_service(args, flags, lambda settings, engine: [HttpTransport(settings, engine)])


def _consume(args: argparse.Namespace) -> int:
    from consumers.runner import KafkaRunner
    from consumers.transport import KafkaTransport

    flags = {
        "kafka_bootstrap_servers": args.bootstrap_servers,
        "kafka_topics": args.topics,
        "kafka_decisions_topic": args.decisions_topic,
        "kafka_dead_letter_topic": args.dead_letter_topic,
        "kafka_group_id": args.group_id,
        "kafka_blocked_topic": args.blocked_topic,
        "kafka_delivery": args.delivery,
        "metrics_port": args.metrics_port,
    }
    # KafkaRunner checks the Kafka settings when it is built, before the model loads
    return _run_service(args, flags, lambda settings, engine: [KafkaTransport(KafkaRunner(engine))])


def _local_engine(args: argparse.Namespace):
    from guard.engine import Engine

    settings = _settings(args, warmup=False)
    engine = Engine(settings)
    engine.start()
    return engine


def _check(args: argparse.Namespace) -> int:
    from guard.v1 import guard_pb2 as pb

    if args.target:
        source = pb.SOURCE_LLM if args.source == "llm" else pb.SOURCE_USER
        request = pb.CheckRequest(text=args.text, source=source, policy=args.policy, tenant=args.tenant)
        stub, metadata = _remote(args)
        _print_message(stub.Check(request, timeout=30, metadata=metadata))
        return 0
    from guard.wire import response_to_pb

    engine = _local_engine(args)
    item = CheckItem(text=args.text, source=Source(args.source), policy=args.policy, tenant=args.tenant)
    try:
        decision = asyncio.run(engine.check(item))
    finally:
        engine.stop()
    _print_message(response_to_pb(decision, ""))
    return 0


def _info(args: argparse.Namespace) -> int:
    from guard.v1 import guard_pb2 as pb

    if args.target:
        stub, metadata = _remote(args)
        _print_message(stub.GetInfo(pb.GetInfoRequest(), timeout=30, metadata=metadata))
        return 0
    from guard.wire import info_to_pb

    engine = _local_engine(args)
    try:
        _print_message(info_to_pb(engine.info()))
    finally:
        engine.stop()
    return 0


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from guard.training.train import TrainConfig, train

    given = {
        k: getattr(args, k)
        for k in ("epochs", "trainable_layers", "mine_after", "seed", "limit", "consistency_share")
    }
    cfg = TrainConfig(
        output=Path(args.output),
        base=Path(args.base) if args.base else None,
        bf16=not args.no_bf16,
        **{k: v for k, v in given.items() if v is not None},
    )
    if args.lr_scale is not None:
        cfg.lr_layers *= args.lr_scale
        cfg.lr_head *= args.lr_scale
    out = train(cfg)
    print(f"model written to {out}; evaluate it with: guard eval {out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.routes:
        from guard.training.routes_eval import evaluate_routes

        evaluate_routes(Path(args.output))
        print(f"report written to {args.output}/ (routes.md, routes.json)")
        return 0
    if not args.model:
        raise ConfigError("eval: name a MODEL folder (or 'default'), or pass --routes")
    from guard.training.evaluate import evaluate

    evaluate(args.model, Path(args.output), limit=args.limit, backend=args.backend, quantize=args.quantize)
    print(f"report written to {args.output}/ (report.md, report.json)")
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    from pathlib import Path

    from guard.backends.onnx_export import export_model

    out = export_model(
        Path(args.output), Path(args.model) if args.model else None, args.quantize, args.routing
    )
    print(f"ONNX model folder written to {out}; serve it with: guard serve --model {out}")
    return 0


def _remote(args: argparse.Namespace):
    """A stub for `--target` and the call metadata (the bearer token, when one is configured)."""
    import grpc

    from guard.server.auth import client_token
    from guard.v1 import guard_pb2_grpc

    token = client_token(_settings(args))
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    return guard_pb2_grpc.GuardServiceStub(grpc.insecure_channel(args.target)), metadata


COMMANDS = {
    "serve": _serve,
    "proxy": _proxy,
    "consume": _consume,
    "check": _check,
    "info": _info,
    "train": _train,
    "eval": _eval,
    "export-onnx": _export_onnx,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"guard: configuration error: {exc.message}", file=sys.stderr)
        return 2
    except GuardError as exc:
        print(f"guard: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:  # a remote call's status: print it, not a traceback
        import grpc

        if not isinstance(exc, grpc.RpcError):
            raise
        print(f"guard: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
