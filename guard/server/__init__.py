"""The gRPC transport: thin conversion around the engine."""
