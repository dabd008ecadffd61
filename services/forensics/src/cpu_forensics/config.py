"""Configuration of the forensics service, from ``FORENSICS_*`` variables."""

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from cpu_shared.config import ServiceSettings


class ForensicsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FORENSICS_", extra="ignore")

    service_name: str = "forensics"
    port: int = 8103
    database_url: str = "sqlite+aiosqlite:///./var/forensics.db"

    #: The custody ledger's name: the first line of every signed checkpoint and the key name
    #: of its verifier key. One per deployment, so heads of two logs are never confused.
    ledger_origin: str = "forensics.cpu.local/custody-ledger"
    #: PEM (PKCS#8) of the Ed25519 key that signs tree heads; from a secret store in
    #: production. Overrides the key file.
    ledger_signing_key: SecretStr | None = None
    #: Where the key lives when ``ledger_signing_key`` is not set (created, mode 0600, on
    #: first use while ``ledger_allow_dev_key`` is true).
    ledger_signing_key_file: Path = Path("./var/forensics-ledger-signing-key.pem")
    #: False in production: a missing key then stops the service instead of a new key being
    #: generated, which would start signing with a key no one has ever published (and, with
    #: several replicas, each with a key of its own). Unset, it follows the platform's own
    #: switch for local keys, ``CPU_CRYPTO_ALLOW_DEV_KEYS``.
    ledger_allow_dev_key: bool | None = None

    @property
    def ledger_dev_key_allowed(self) -> bool:
        if self.ledger_allow_dev_key is not None:
            return self.ledger_allow_dev_key
        from cpu_shared.security.crypto import KeyringSettings

        return KeyringSettings().allow_dev_keys

    #: Hours after which an unanswered transfer request is flagged for a supervisor.
    stale_transfer_hours: float = Field(default=24, gt=0)
    #: Directories searched for the report's fonts (DejaVu Sans for Latin, Khmer OS for Khmer).
    report_font_dirs: list[Path] = Field(
        default_factory=lambda: [
            Path("/usr/share/fonts/truetype/dejavu"),
            Path("/usr/share/fonts/truetype/khmeros"),
            Path("/usr/share/fonts/truetype"),
        ]
    )
