"""The CPU reporting service: the unit's figures, from events that carry no personal data."""
