"""Kafka's security model: listeners and TLS, SASL authentication, ACL authorization and quotas.

Nothing here imports `moldau.broker`: the broker's connection and handlers call into these modules,
which work on plain values (config lookups, bytes, principals) and can be tested alone.
"""
