"""Conversations: history kept on JetStream KV, turns streamed as typed SSE events."""
