"""Policies: pure code that turns model scores into ALLOW / FLAG / BLOCK. No torch, no grpc."""

from guard.policy.config import FailMode, PolicyConfig, ReleaseMode, StreamConfig, Thresholds
from guard.policy.rules import Policy, PolicySet

__all__ = ["FailMode", "Policy", "PolicyConfig", "PolicySet", "ReleaseMode", "StreamConfig", "Thresholds"]
