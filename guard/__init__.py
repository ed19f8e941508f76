"""guard: a streaming content-safety and intent-routing service for chatbots."""

__version__ = "0.1.0"
