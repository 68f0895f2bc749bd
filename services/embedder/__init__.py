"""The embedder: embeddings for POST /v1/embeddings and the semantic cache, on the bus."""
