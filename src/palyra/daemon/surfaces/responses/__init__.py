"""The OpenAI Responses surface: ``/v1/responses`` create, retrieve and delete."""
