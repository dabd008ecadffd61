"""The CPU intake service: referrals from the helpline, police and community."""
