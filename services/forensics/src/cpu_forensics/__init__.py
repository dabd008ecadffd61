"""The CPU forensics service: evidence register, chain of custody and lab analyses."""
