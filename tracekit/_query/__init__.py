"""Understand: DuckDB views over the store, the named postmortem queries, run diffs."""
