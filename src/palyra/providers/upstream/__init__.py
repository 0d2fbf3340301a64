"""The upstream HTTP client: pool, connections, address guard, SSE, timers."""
