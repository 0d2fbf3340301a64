"""The OpenAI-compatible surface: Chat Completions, embeddings and transcription."""
