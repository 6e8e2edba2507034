"""Helpers shared by tests; ``index_files`` is the one place tests learn the index's layout."""
