"""The Connect runtime: worker, task runners, herders, error handling (org.apache.kafka.connect.runtime)."""
