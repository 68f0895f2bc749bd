"""The edge gateway: OpenAI-compatible HTTP and SSE in front of the bus."""
