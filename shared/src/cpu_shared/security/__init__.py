"""Security building blocks shared by the five services.

- :mod:`.auth` - bearer JWT authentication (OIDC JWKS in production, an Ed25519 dev key locally)
- :mod:`.permissions` - deny-by-default role tables and the record-visibility rule
- :mod:`.audit` - the append-only audit log every service keeps in its own store
- :mod:`.crypto` - envelope encryption of personal fields at rest, with key rotation
- :mod:`.blind_index` - keyed, domain-separated indexes for equality/duplicate search
- :mod:`.pseudonym` - stable pseudonymous ids for events that leave a service
- :mod:`.http` - request limits, strict content types, CORS and security headers

Submodules are imported explicitly (``from cpu_shared.security.auth import ...``); this package
does not import them eagerly, so importing one part never pulls in the others' dependencies.
"""
