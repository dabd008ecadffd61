"""The CPU icac service: international tip feeds, triage, analyst workflow and escalation."""
