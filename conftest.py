"""Fixtures every test directory shares: a real Kafka broker and real PostgreSQL per session.

The session's dev signing key and dev data keys live in a temporary directory, set through the
environment before any test runs, so services started as subprocesses use the same keys as the
tokens the tests mint.
"""

import os
import tempfile

pytest_plugins = [
    "cpu_platform.testing.kafka_fixtures",
    "cpu_platform.testing.postgres_fixtures",
    "cpu_platform.testing.browser_fixtures",
    "cpu_platform.testing.stack",
]


def pytest_configure() -> None:
    keys = tempfile.mkdtemp(prefix="cpu-test-keys-")
    os.environ.setdefault("CPU_AUTH_DEV_SIGNING_KEY_FILE", os.path.join(keys, "signing-key.pem"))
    os.environ.setdefault("CPU_CRYPTO_DEV_KEYS_FILE", os.path.join(keys, "master-keys.json"))
    os.environ.setdefault(
        "FORENSICS_LEDGER_SIGNING_KEY_FILE", os.path.join(keys, "ledger-signing-key.pem")
    )
