"""The admin API under ``/console/v1``."""
