"""HTTP entrypoints: decode, call one service function, return."""
