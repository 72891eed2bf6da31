"""The side-effect ledger: idempotent writes, written ahead of the effect, and compensation."""
