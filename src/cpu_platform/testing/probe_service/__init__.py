"""A minimal service on the platform runtime, for testing delivery as real processes.

It consumes envelopes from ``PROBE_TOPIC_IN`` and writes one ``probe_effect`` row per applied
event (no unique constraint, so a duplicate effect would show), and accepts HTTP writes that
publish through the outbox to ``PROBE_TOPIC_OUT``. Tests run it with ``python -m``.
"""
