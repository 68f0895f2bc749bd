"""The HTTP edge: authentication, error bodies, middleware, SSE framing, the API document."""
