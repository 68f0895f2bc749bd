"""The generator: turns chat requests from the bus into streamed turn events."""
