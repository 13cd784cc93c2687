"""Exchange records: built per request, written off the hot path, read by CLI and admin API."""
