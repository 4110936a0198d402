"""Benchmark tracks: each runs its grid end to end and returns tidy result rows."""
