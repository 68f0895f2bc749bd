"""The titler's real side effects: the utility model's SDKs, the KV claim store, the bus."""
