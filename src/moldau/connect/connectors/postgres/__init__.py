"""Postgres source and sink connectors (psycopg 3), configured like Confluent's JDBC connectors."""
