"""Domain core of the forensics service: aggregates, value objects and rules. No I/O.

* ``evidence``: :class:`EvidenceItem`, what an exhibit is (type, seal, hashes, parent).
* ``custody``: registration and two-step handovers, the custody invariants, the
  :class:`CustodyEvent` that becomes a ledger leaf, stale-transfer flagging and chain replay.
* ``ledger``: leaf bytes (RFC 8785), the RFC 9162 Merkle tree, proofs, C2SP signed checkpoints,
  and :func:`verify_log`.
* ``analysis``: lab analyses from request to sign-off.
* ``rules``: the refusals (409 by rule name, 422 by field); ``values``: instants and text.
"""
