"""Letting work in: rate limits, budget reservations, the queue's backpressure, prompt estimates."""
