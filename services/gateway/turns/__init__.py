"""Turns on the bus: launching one, relaying and replaying its events, cancel and attach,
idempotency."""
