"""The online store: PostgreSQL connections, feature tables and database credentials."""
