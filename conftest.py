"""Fixtures every test directory shares: a real Kafka broker and real PostgreSQL per session."""

pytest_plugins = [
    "cpu_platform.testing.kafka_fixtures",
    "cpu_platform.testing.postgres_fixtures",
]
