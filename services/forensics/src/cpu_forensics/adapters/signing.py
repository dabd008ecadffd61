"""The custody ledger's Ed25519 signing key, and the signer built on it.

Production sets ``FORENSICS_LEDGER_SIGNING_KEY`` (PEM, PKCS#8) from a secret store and
``FORENSICS_LEDGER_ALLOW_DEV_KEY=false``, so that a forgotten variable stops the service rather
than silently starting to sign with a fresh key nobody has published. Local runs get a key file
under ``./var`` created on first use with mode 0600, exactly as the dev token key of
:mod:`cpu_shared.security.auth` (same helper: atomic first-writer-wins creation, and a file
that other users can read is refused).

The public half, as a signed-note verifier key, is what ``GET /api/v1/ledger/public-key``
serves and what anyone checking a checkpoint needs. Rotating this key is a new log identity
for verifiers: publish the new verifier key before the first head it signs (old heads stay
verifiable under the old key, which ``cpu ledger verify --verifier-key`` accepts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cpu_forensics.config import ForensicsSettings
from cpu_forensics.domain.ledger import checkpoint_text, sign_checkpoint, verifier_key
from cpu_shared.security._files import read_or_create_private_file, read_private_file


class LedgerKeyError(RuntimeError):
    """The ledger signing key is missing, malformed or not allowed."""


def _new_ed25519_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_ledger_signing_key(settings: ForensicsSettings) -> Ed25519PrivateKey:
    """The configured key, else (if allowed) the key file, created with mode 0600 if missing."""
    if settings.ledger_signing_key is not None:
        pem = settings.ledger_signing_key.get_secret_value().encode()
    elif settings.ledger_dev_key_allowed:
        pem = read_or_create_private_file(settings.ledger_signing_key_file, _new_ed25519_pem)
    elif settings.ledger_signing_key_file.exists():
        # A key file provisioned by the operator (mounted secret) is fine in production too;
        # what is refused there is *creating* one.
        pem = read_private_file(settings.ledger_signing_key_file)
    else:
        raise LedgerKeyError(
            "no ledger signing key: set FORENSICS_LEDGER_SIGNING_KEY or provide "
            "FORENSICS_LEDGER_SIGNING_KEY_FILE (dev keys are disabled)"
        )
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise LedgerKeyError("the ledger signing key is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerKeyError("the ledger signing key must be an Ed25519 private key (PKCS#8)")
    return key


@dataclass(frozen=True)
class LedgerSigner:
    """Signs tree heads as C2SP checkpoints under the log's origin."""

    origin: str
    key: Ed25519PrivateKey

    @property
    def verifier_key(self) -> str:
        """``<origin>+<key id>+<base64(0x01 || public key)>``: what verifiers pin."""
        return verifier_key(self.origin, self.key.public_key())

    def checkpoint(self, tree_size: int, root_hash: bytes) -> str:
        return sign_checkpoint(self.key, self.origin, tree_size, root_hash)


@dataclass(frozen=True)
class SignedHead:
    tree_size: int
    root_hash: bytes
    timestamp: datetime
    checkpoint: str


def build_signer(settings: ForensicsSettings) -> LedgerSigner:
    """The signer of this deployment; fails early (at start) on a bad key or origin."""
    signer = LedgerSigner(settings.ledger_origin, load_ledger_signing_key(settings))
    checkpoint_text(signer.origin, 0, bytes(32))  # the origin must be a valid key name
    return signer


def verifier_key_from_settings(settings: ForensicsSettings) -> str:
    """The verifier key of the configured signing key, never creating a key file."""
    if settings.ledger_signing_key is not None:
        pem = settings.ledger_signing_key.get_secret_value().encode()
    elif settings.ledger_signing_key_file.exists():
        pem = read_private_file(settings.ledger_signing_key_file)
    else:
        raise LedgerKeyError(
            f"no FORENSICS_LEDGER_SIGNING_KEY and no key file at "
            f"{settings.ledger_signing_key_file}; pass --verifier-key"
        )
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerKeyError("the ledger signing key must be an Ed25519 private key (PKCS#8)")
    return verifier_key(settings.ledger_origin, key.public_key())
