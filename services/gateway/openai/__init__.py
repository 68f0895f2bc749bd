"""OpenAI's Chat Completions wire format: the request schema, its fields and tools,
images, rendering."""
