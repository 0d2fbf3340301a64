"""The HTTP API surfaces: one folder per wire format, plus what they share."""
