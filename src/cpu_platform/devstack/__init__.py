"""Local development stack (Kafka broker, stores, supervisor), run without Docker."""
