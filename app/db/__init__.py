"""Storage: engine and session set-up, and the SQLModel tables."""
