"""Registering the servicer with request decoding that turns unparseable bytes into a clear error.

gRPC's own handlers answer a request that is not valid protobuf (corrupt wire format, a string
field that is not UTF-8) with UNKNOWN or INTERNAL. Here each method's deserializer hands such
bytes over as `Undecodable`, and the servicer answers INVALID_ARGUMENT naming the message type.
The method table is read from the service descriptor, so it cannot drift from the .proto.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass

from guard.errors import InvalidInput
from guard.v1 import guard_pb2


@dataclass(frozen=True)
class Undecodable:
    """A request message that did not parse."""

    type_name: str
    problem: str


def decoded(message, field: str = "request"):
    """The message itself; `InvalidInput` when it did not parse."""
    if isinstance(message, Undecodable):
        raise InvalidInput(
            field, f"not a valid {message.type_name} message: {message.problem}", reason="undecodable"
        )
    return message


def _tolerant(message_class):
    name = message_class.DESCRIPTOR.full_name

    def parse(data: bytes):
        try:
            return message_class.FromString(data)
        except DecodeError as exc:
            problem = str(exc).rsplit(": ", 1)[-1] if ": " in str(exc) else "wire format was corrupt"
            return Undecodable(name, problem)
        except Exception:  # noqa: BLE001 - anything the parser raises is the bytes' fault
            return Undecodable(name, "wire format was corrupt")

    return parse


def add_servicer(servicer, server: grpc.aio.Server, service: str = "GuardService") -> str:
    """Register every method of `service` (from guard.proto) on `servicer`; returns the service's
    full name."""
    descriptor = guard_pb2.DESCRIPTOR.services_by_name[service]
    handlers = {}
    for method in descriptor.methods:
        kind = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = kind(
            getattr(servicer, method.name),
            request_deserializer=_tolerant(GetMessageClass(method.input_type)),
            response_serializer=GetMessageClass(method.output_type).SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(descriptor.full_name, handlers),))
    server.add_registered_method_handlers(descriptor.full_name, handlers)
    return descriptor.full_name
