"""Reliable messaging: envelope, topics, outbox, idempotent consumers, dead letters."""
