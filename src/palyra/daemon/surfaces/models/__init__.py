"""The model list and model objects, in the caller's API shape (OpenAI or Anthropic)."""
