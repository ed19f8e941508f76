"""The OpenAI-compatible HTTP transport (`guard proxy`): a guarding proxy in front of an LLM server
that speaks OpenAI's API, and OpenAI's `/v1/moderations` answered by guard's own engine."""
