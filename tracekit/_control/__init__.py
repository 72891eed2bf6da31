"""The control plane: halt flags, counters, leases and idempotency keys (SQLite, Redis or
in memory).
"""
