"""The `tokenbus` command line."""
