"""The three keyed operations intake applies to personal data, built once per process.

``Keyring.field_cipher()``, ``blind_indexer()`` and ``pseudonymizer()`` each build a new object
(AES key schedules, HKDF derivations); doing that per request is wasted work on the hot path,
so the service builds one :class:`RecordProtection` at start and shares it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from cpu_intake.domain.matching import MatchFeatures
from cpu_shared.security.blind_index import BlindIndexer
from cpu_shared.security.crypto import FieldCipher, Keyring, field_context
from cpu_shared.security.pseudonym import Pseudonymizer

#: Blind-index kinds are namespaced so that intake's digests can never be joined with another
#: service's (or the shared ``name_token`` kind) even where the blind index key is shared.
INDEX_KIND_PREFIX = "intake_match_"


@dataclass(frozen=True)
class RecordProtection:
    cipher: FieldCipher
    indexer: BlindIndexer
    pseudonyms: Pseudonymizer

    @classmethod
    def from_keyring(cls, keyring: Keyring) -> RecordProtection:
        return cls(keyring.field_cipher(), keyring.blind_indexer(), keyring.pseudonymizer())

    # --- field encryption ---------------------------------------------------------------------

    def seal(self, table: str, column: str, record_id: UUID, value: str | None) -> str | None:
        """``value`` encrypted for exactly this slot; None stays None (nothing given)."""
        if value is None:
            return None
        return self.cipher.encrypt(value, context=field_context(table, column, str(record_id)))

    def seal_json(self, table: str, column: str, record_id: UUID, value: Any) -> str:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return self.cipher.encrypt(text, context=field_context(table, column, str(record_id)))

    def open(self, table: str, column: str, record_id: UUID, token: str | None) -> str | None:
        if token is None:
            return None
        return self.cipher.decrypt(token, context=field_context(table, column, str(record_id)))

    def open_json(self, table: str, column: str, record_id: UUID, token: str | None) -> Any:
        text = self.open(table, column, record_id, token)
        return None if text is None else json.loads(text)

    # --- blind indexes and pseudonyms -----------------------------------------------------------

    def digests(self, features: MatchFeatures) -> MatchFeatures:
        """Every feature value replaced by its HMAC under the key of its kind."""
        return features.transform(
            lambda kind, value: self.indexer.index(INDEX_KIND_PREFIX + kind, value)
        )

    def referral_pseudonym(self, referral_id: UUID) -> str:
        return self.pseudonyms.pseudonym("referral", str(referral_id))

    def child_pseudonym(self, child_id: UUID) -> str:
        return self.pseudonyms.pseudonym("child", str(child_id))
