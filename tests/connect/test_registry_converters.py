"""Avro and JSON Schema converters through a Schema Registry. Against MOLDAU_SCHEMA_REGISTRY_URL when set
(e.g. Moldau's or Confluent's registry); otherwise against a minimal in-test server that implements only the
three registry calls the converters make, so the wire format and the schema mapping are still exercised."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import threading

import pytest

from moldau.connect.api.data import INT64, OPTIONAL_STRING, Schema, Struct, decimal_schema, timestamp_schema
from moldau.connect.converters.registry import AvroConverter, JsonSchemaConverter

ORDER = Schema.struct([("id", INT64), ("customer", OPTIONAL_STRING), ("amount", decimal_schema(2, True)),
                       ("placed_at", timestamp_schema(True)),
                       ("tags", Schema.array(Schema("string"), optional=True))], name="shop.Order")


@pytest.fixture(scope="module")
def registry_url():
    url = os.environ.get("MOLDAU_SCHEMA_REGISTRY_URL")
    if url:
        yield url
        return
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from tests.fixtures import free_port, wait_for_port

    schemas: list[dict] = []

    async def register(request: Request) -> JSONResponse:
        body = await request.json()
        entry = {"schema": body["schema"], "schemaType": body.get("schemaType", "AVRO")}
        if entry not in schemas:
            schemas.append(entry)
        return JSONResponse({"id": schemas.index(entry) + 1})

    async def by_id(request: Request) -> JSONResponse:
        index = int(request.path_params["id"]) - 1
        if not 0 <= index < len(schemas):
            return JSONResponse({"error_code": 40403, "message": "Schema not found"}, status_code=404)
        return JSONResponse(schemas[index])

    app = Starlette(routes=[Route("/subjects/{subject}/versions", register, methods=["POST"]),
                            Route("/schemas/ids/{id:int}", by_id, methods=["GET"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port, 30)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def order():
    return Struct(ORDER, {"id": 7, "customer": "ada", "amount": decimal.Decimal("12.50"),
                          "placed_at": dt.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=dt.UTC), "tags": ["a", "b"]})


@pytest.mark.parametrize("converter_class", [AvroConverter, JsonSchemaConverter])
def test_round_trip_through_the_registry(registry_url, converter_class):
    converter = converter_class()
    converter.configure({"schema.registry.url": registry_url}, is_key=False)
    data = converter.from_connect_data("orders", ORDER, order())
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") > 0  # Confluent's wire format header
    back = converter.to_connect_data("orders", data)
    assert back.value.to_dict() == order().to_dict()
    assert [f.name for f in back.schema.fields] == [f.name for f in ORDER.fields]
    assert converter.to_connect_data("orders", None).value is None


def test_avro_bytes_are_readable_by_confluent_kafkas_deserializer(registry_url):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    converter = AvroConverter()
    converter.configure({"schema.registry.url": registry_url}, is_key=False)
    data = converter.from_connect_data("orders", ORDER, order())
    decoded = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))(
        data, SerializationContext("orders", MessageField.VALUE))
    assert decoded["id"] == 7 and decoded["amount"] == decimal.Decimal("12.50") and decoded["tags"] == ["a", "b"]
    assert json.dumps(decoded["customer"]) == '"ada"'
