"""Server mechanics: the hot path, the coalescing HTTP protocol, worker processes."""
