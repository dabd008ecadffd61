"""The CPU casework service: cases from referrals and tips, outcomes and victim services."""
