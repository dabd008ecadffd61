"""Reliable messaging: envelope, topics, transactional outbox, idempotent consumers, dead letters."""
