"""The CPU intake service: referrals from the 1288 helpline, police and community, triaged for casework."""
