"""Built-in connectors: FileStream (Kafka's examples), Postgres, Mirror."""
