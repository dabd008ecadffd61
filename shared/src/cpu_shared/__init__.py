"""Event contracts and the small common platform code every CPU service uses."""
