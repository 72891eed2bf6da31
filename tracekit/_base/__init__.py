"""The base layer: encoding, redaction, the data model's vocabularies, ids.

Imports nothing else of tracekit.
"""
