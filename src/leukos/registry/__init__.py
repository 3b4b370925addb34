"""Patient and procedure registry (storage on SQLite or PostgreSQL)."""
