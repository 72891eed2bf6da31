"""The data plane on disk: the store's layout, write-ahead segments, compaction into Parquet
and the ledger writer.
"""
