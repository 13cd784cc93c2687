"""Storage: the ORM models, engines and sessions. The schema comes only from migrations."""
