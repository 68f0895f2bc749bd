"""Anthropic's Messages API on the gateway: its request, translated onto a turn, and its
stream and body rendered back."""
