"""POST /v1/embeddings: OpenAI's request and answer, served by the embedder over the bus."""
