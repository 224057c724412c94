"""The Kafka wire protocol: messages generated from Kafka's JSON schemas, framing, record batches.

- ``api``: request/response framing and the codec entry points (``decode_request``, ``encode_response``).
- ``messages``: one generated class per schema (``messages.FetchResponse``).
- ``errors``: Kafka's ``ErrorCode`` table and the codec's exceptions.
- ``schema``/``classes``/``codegen``/``gen_*``: the generator behind them; ``primitives``: varints.
"""
