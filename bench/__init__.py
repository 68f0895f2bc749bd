"""The benchmark harness: tokenbus against a direct upstream and a LiteLLM proxy."""
