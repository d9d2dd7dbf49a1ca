"""The GraphQL admin API (the admin UI's transport)."""
