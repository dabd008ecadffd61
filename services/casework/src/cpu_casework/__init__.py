"""The CPU casework service: cases from referrals and tips, teams, investigation outcomes and victim services."""
