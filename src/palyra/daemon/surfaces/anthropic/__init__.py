"""The Anthropic-compatible surface: Messages and count_tokens."""
