"""The titler: names conversations with a small utility model, off the chat path."""
