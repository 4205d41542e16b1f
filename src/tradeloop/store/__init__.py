"""Storage: state store (SQLite/PostgreSQL) and analytics store (DuckDB), with migrations."""
