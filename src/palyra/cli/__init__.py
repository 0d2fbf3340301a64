"""The ``palyra`` command line."""
