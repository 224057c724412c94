"""Compatibility table. Expected answers are facts from the Avro specification ("Schema Resolution"),
Confluent's documentation of compatibility types, and the cases of Confluent's JSON Schema and Protobuf
`diff-schema-examples.json` test resources (original = the registered schema, update = the new one,
`compatible` = a BACKWARD registration succeeds)."""

from __future__ import annotations

import json

import pytest

from moldau.registry import compatibility, formats


def avro(fields: list | None = None, name: str = "R", **extra: object) -> str:
    return json.dumps({"type": "record", "name": name, "fields": fields or [], **extra})


def f(name: str, type_: object, **extra: object) -> dict:
    return {"name": name, "type": type_, **extra}


def enum(symbols: list[str], **extra: object) -> dict:
    return {"type": "enum", "name": "Color", "symbols": symbols, **extra}


A = f("a", "int")
# (description, old schema, new schema, BACKWARD: new reads old, FORWARD: old reads new)
AVRO_CASES = [
    ("add field with default", avro([A]), avro([A, f("b", "string", default="x")]), True, True),
    ("add field without default", avro([A]), avro([A, f("b", "string")]), False, True),
    ("remove field with default", avro([A, f("b", "string", default="x")]), avro([A]), True, True),
    ("remove field without default", avro([A, f("b", "string")]), avro([A]), True, False),
    ("promote int to long", avro([f("a", "int")]), avro([f("a", "long")]), True, False),
    ("demote long to int", avro([f("a", "long")]), avro([f("a", "int")]), False, True),
    ("promote int to float", avro([f("a", "int")]), avro([f("a", "float")]), True, False),
    ("promote int to double", avro([f("a", "int")]), avro([f("a", "double")]), True, False),
    ("promote long to float", avro([f("a", "long")]), avro([f("a", "float")]), True, False),
    ("promote long to double", avro([f("a", "long")]), avro([f("a", "double")]), True, False),
    ("promote float to double", avro([f("a", "float")]), avro([f("a", "double")]), True, False),
    ("string to bytes", avro([f("a", "string")]), avro([f("a", "bytes")]), True, True),
    ("int to string", avro([f("a", "int")]), avro([f("a", "string")]), False, False),
    ("boolean to int", avro([f("a", "boolean")]), avro([f("a", "int")]), False, False),
    ("enum symbol added", avro([f("c", enum(["R", "G"]))]), avro([f("c", enum(["R", "G", "B"]))]), True, False),
    ("enum symbol removed", avro([f("c", enum(["R", "G", "B"]))]), avro([f("c", enum(["R", "G"]))]), False, True),
    ("enum symbol removed, reader enum default", avro([f("c", enum(["R", "G", "B"]))]),
     avro([f("c", enum(["R", "G"], default="R"))]), True, True),
    ("enum renamed", avro([f("c", enum(["R"]))]), avro([f("c", {**enum(["R"]), "name": "Hue"})]), False, False),
    ("union branch added", avro([f("u", ["null", "string"])]), avro([f("u", ["null", "string", "int"])]), True,
     False),
    ("union branch removed", avro([f("u", ["null", "string", "int"])]), avro([f("u", ["null", "string"])]),
     False, True),
    ("type widened to a union", avro([f("u", "string")]), avro([f("u", ["null", "string"])]), True, False),
    ("union narrowed to its type", avro([f("u", ["null", "string"])]), avro([f("u", "string")]), False, True),
    ("union with a promotable branch", avro([f("u", ["null", "int"])]), avro([f("u", ["null", "long"])]), True,
     False),
    ("record renamed", avro([A], name="R"), avro([A], name="S"), False, False),
    ("record renamed with alias", avro([A], name="R"), avro([A], name="S", aliases=["R"]), True, False),
    ("namespace changed", avro([A], namespace="x"), avro([A], namespace="y"), True, True),
    ("field renamed", avro([f("a", "int")]), avro([f("b", "int")]), False, False),
    ("field renamed with alias", avro([f("a", "int")]), avro([f("b", "int", aliases=["a"])]), True, False),
    ("fixed size changed", avro([f("x", {"type": "fixed", "name": "F", "size": 4})]),
     avro([f("x", {"type": "fixed", "name": "F", "size": 8})]), False, False),
    ("array items promoted", avro([f("xs", {"type": "array", "items": "int"})]),
     avro([f("xs", {"type": "array", "items": "long"})]), True, False),
    ("map values changed", avro([f("m", {"type": "map", "values": "string"})]),
     avro([f("m", {"type": "map", "values": "int"})]), False, False),
    ("nested record field added without default",
     avro([f("n", {"type": "record", "name": "N", "fields": [A]})]),
     avro([f("n", {"type": "record", "name": "N", "fields": [A, f("b", "int")]})]), False, True),
    ("default value changed", avro([f("a", "int", default=1)]), avro([f("a", "int", default=2)]), True, True),
    ("logical type added", avro([f("id", "string")]),
     avro([f("id", {"type": "string", "logicalType": "uuid"})]), True, True),
    ("recursive type unchanged", avro([A, f("next", ["null", "R"], default=None)]),
     avro([A, f("next", ["null", "R"], default=None)]), True, True),
    ("recursive type field added with default", avro([A, f("next", ["null", "R"], default=None)]),
     avro([A, f("next", ["null", "R"], default=None), f("b", "int", default=0)]), True, True),
    ("primitive to null", '"int"', '"null"', False, False),
    ("primitive schemas promoted", '"int"', '"long"', True, False),
]

P3 = 'syntax = "proto3";\n'
P2 = 'syntax = "proto2";\n'
STATUS_MSG = "message TestMessage {\n string test_string = 1;\n .foo.TestMessage.Status test_int = 2;\n" \
             " message Status {\n string test_string = 1;\n }\n}"
# (description, original, update, compatible) from Confluent's protobuf diff-schema-examples.json
PROTOBUF_CASES = [
    ("package changed", P3 + "package foo;\n" + STATUS_MSG,
     P3 + "package bar;\n" + STATUS_MSG.replace(".foo.", ".bar."), True),
    ("name qualification changed", P3 + "message TestMessage {\n string s = 1;\n Status t = 2;\n"
     " message Status {\n string s = 1;\n }\n}", P3 + "message TestMessage {\n string s = 1;\n"
     " .TestMessage.Status t = 2;\n message Status {\n string s = 1;\n }\n}", True),
    ("field added", P3 + "message M { string a = 1; }", P3 + "message M { string a = 1; string b = 2; }", True),
    ("required field added", P2 + "message M { optional string a = 1; }",
     P2 + "message M { optional string a = 1; required string b = 2; }", False),
    ("field added to nested type", P3 + "message W { int32 i = 1; message M { string a = 1; } }",
     P3 + "message W { int32 i = 1; message M { string a = 1; string b = 2; } }", True),
    ("field removed", P3 + "message M { string a = 1; string b = 2; }", P3 + "message M { string a = 1; }", True),
    ("required field removed", P2 + "message M { optional string a = 1; required string b = 2; }",
     P2 + "message M { optional string a = 1; }", False),
    ("field number changed", P3 + "message M { string a = 1; }", P3 + "message M { string a = 2; }", True),
    ("int32 to int64", P3 + "message M { int32 a = 2; }", P3 + "message M { int64 a = 2; }", True),
    ("string to bytes", P3 + "message M { string a = 2; }", P3 + "message M { bytes a = 2; }", True),
    ("int32 to enum", P3 + "message M { int32 a = 2; }",
     P3 + "message M { Status a = 2; }\nenum Status { ACTIVE = 0; INACTIVE = 1; }", True),
    ("enum to int32", P3 + "message M { Status a = 2; }\nenum Status { ACTIVE = 0; INACTIVE = 1; }",
     P3 + "message M { int32 a = 2; }", True),
    ("int32 to message", P3 + "message M { int32 a = 2; }",
     P3 + "message M { .M.Status a = 2; message Status { string s = 1; } }", False),
    ("message to int32", P3 + "message M { .M.Status a = 2; message Status { string s = 1; } }",
     P3 + "message M { int32 a = 2; }", False),
    ("enum constant renamed", P3 + "message M { S a = 2; }\nenum S { A = 0; B = 1; }",
     P3 + "message M { S a = 2; }\nenum S { A = 0; NOT_B = 1; }", True),
    ("one field moved to a new oneof", P3 + "message M { string a = 1; string b = 2; }",
     P3 + "message M { string a = 1; oneof o { string b = 2; int32 c = 3; } }", True),
    ("several fields moved to a new oneof", P3 + "message M { string a = 1; string b = 2; }",
     P3 + "message M { oneof o { string a = 1; string b = 2; int32 c = 3; } }", False),
    ("field added to a oneof", P3 + "message M { oneof o { string a = 1; string b = 2; } }",
     P3 + "message M { oneof o { string a = 1; string b = 2; int32 c = 3; } }", True),
    ("field removed from a oneof", P3 + "message M { oneof o { string a = 1; string b = 2; int32 c = 3; } }",
     P3 + "message M { oneof o { string a = 1; string b = 2; } }", False),
    ("scalar to another message", P3 + "message M { int32 a = 2; }",
     P3 + "message M { N a = 2; }\nmessage N { string s = 1; }", False),
    ("int32 to string", P3 + "message M { int32 a = 2; }", P3 + "message M { string b = 2; }", False),
    ("field's message type replaced", P3 + "message M { N2 a = 2; }\nmessage N2 { string s = 1; }",
     P3 + "message M { N3 a = 2; }\nmessage N3 { string s = 1; }", False),
    ("map value type changed", P3 + "message M { map<string, int32> a = 2; }",
     P3 + "message M { map<string, string> b = 2; }", False),
    ("map value name qualified", P3 + "message M { map<string, S> a = 2; message S { string s = 1; } }",
     P3 + "message M { map<string, M.S> a = 2; message S { string s = 1; } }", True),
    ("optional message to repeated", P3 + "message M { optional S a = 2; message S { string s = 1; } }",
     P3 + "message M { repeated S a = 2; message S { string s = 1; } }", True),
    ("optional string to repeated", P3 + "message M { optional string a = 1; }",
     P3 + "message M { repeated string a = 1; }", True),
    ("optional int32 to repeated", P3 + "message M { optional int32 a = 1; }",
     P3 + "message M { repeated int32 a = 1; }", False),
    ("message added", P3 + "message M { string a = 1; }",
     P3 + "message M { string a = 1; }\nmessage N { string a = 1; }", True),
    ("messages reordered", P3 + "message M { string a = 1; }\nmessage N { string a = 1; }",
     P3 + "message N { string a = 1; }\nmessage M { string a = 1; }", True),
    ("message removed", P3 + "message M { string a = 1; }\nmessage N { string a = 1; }",
     P3 + "message M { string a = 1; }", False),
]

# (description, original, update, compatible) from Confluent's JSON Schema diff-schema-examples.json
JSON_CASES = [
    ("anything to the empty schema", {"properties": {}}, {}, True),
    ("title changed", {"title": "a"}, {"title": "b"}, True),
    ("object to array", {"type": "object"}, {"type": "array"}, False),
    ("minLength increased", {"type": "string", "minLength": 10}, {"type": "string", "minLength": 11}, False),
    ("minLength decreased", {"type": "string", "minLength": 11}, {"type": "string", "minLength": 10}, True),
    ("maxLength increased", {"type": "string", "maxLength": 10}, {"type": "string", "maxLength": 12}, True),
    ("maxLength decreased", {"type": "string", "maxLength": 12}, {"type": "string", "maxLength": 10}, False),
    ("pattern removed", {"type": "string", "pattern": "uuid"}, {"type": "string"}, True),
    ("pattern changed", {"type": "string", "pattern": "date-time"}, {"type": "string", "pattern": "uuid"}, False),
    ("maximum removed", {"type": "number", "maximum": 10}, {"type": "number"}, True),
    ("maximum increased", {"type": "number", "maximum": 10}, {"type": "number", "maximum": 11}, True),
    ("maximum decreased", {"type": "number", "maximum": 11}, {"type": "number", "maximum": 10}, False),
    ("minimum increased", {"type": "number", "minimum": 10}, {"type": "number", "minimum": 11}, False),
    ("minimum decreased", {"type": "number", "minimum": 11}, {"type": "number", "minimum": 10}, True),
    ("multipleOf removed", {"type": "number", "multipleOf": 10}, {"type": "number"}, True),
    ("multipleOf reduced", {"type": "number", "multipleOf": 10}, {"type": "number", "multipleOf": 2}, True),
    ("multipleOf changed", {"type": "number", "multipleOf": 10}, {"type": "number", "multipleOf": 11}, False),
    ("number narrowed to integer", {"type": "number"}, {"type": "integer"}, False),
    ("integer extended to number", {"type": "integer"}, {"type": "number"}, True),
    ("not narrowed", {"not": {"type": "number"}}, {"not": {"type": "integer"}}, True),
    ("not extended", {"not": {"type": "integer"}}, {"not": {"type": "number"}}, False),
    ("enum removed", {"type": "string", "enum": ["red"]}, {"type": "string"}, True),
    ("enum in allOf changed", {"allOf": [{"type": "string"}, {"enum": ["red"]}]},
     {"allOf": [{"type": "string"}, {"enum": ["blue"]}]}, False),
    ("type array extended", {"type": ["object"]}, {"type": ["object", "array"]}, True),
    ("oneOf branch replaced", {"oneOf": [{"type": "string"}]}, {"oneOf": [{"type": "number"}]}, False),
    ("oneOf branch added", {"oneOf": [{"type": "string"}]}, {"oneOf": [{"type": "number"}, {"type": "string"}]},
     True),
    ("open model property renamed", {"properties": {"foo": {"type": "string"}}},
     {"properties": {"bar": {"type": "string"}}}, False),
    ("property type changed", {"properties": {"foo": {"type": "string"}}},
     {"properties": {"foo": {"type": "number"}}}, False),
    ("optional property added to closed model",
     {"properties": {"foo": {"type": "string"}}, "additionalProperties": False},
     {"properties": {"foo": {"type": "string"}, "bar": {"type": "number"}}, "additionalProperties": False}, True),
    ("property added, covered by patternProperties",
     {"properties": {"foo": {"type": "string"}}, "additionalProperties": False,
      "patternProperties": {"^I_": {"type": "integer"}}},
     {"properties": {"foo": {"type": "string"}, "I_123": {"type": "number"}}, "additionalProperties": False,
      "patternProperties": {"^I_": {"type": "integer"}}}, True),
    ("property added, covered by additionalProperties",
     {"properties": {"foo": {"type": "string"}}, "additionalProperties": {"type": "string"}},
     {"properties": {"foo": {"type": "string"}, "bar": {"type": "string"}},
      "additionalProperties": {"type": "string"}}, True),
    ("property added, not covered by additionalProperties",
     {"properties": {"foo": {"type": "string"}}, "additionalProperties": {"type": "string"}},
     {"properties": {"foo": {"type": "string"}, "bar": {"type": "number"}},
      "additionalProperties": {"type": "string"}}, False),
    ("required property added",
     {"properties": {"foo": {"type": "string"}}, "additionalProperties": {"type": "string"}},
     {"properties": {"foo": {"type": "string"}, "bar": {"type": "string"}}, "required": ["bar"],
      "additionalProperties": {"type": "string"}}, False),
    ("property removed, covered by patternProperties",
     {"properties": {"foo": {"type": "string"}, "I_123": {"type": "integer"}}, "additionalProperties": False},
     {"properties": {"foo": {"type": "string"}}, "additionalProperties": False,
      "patternProperties": {"^I_": {"type": "number"}}}, True),
    ("property removed, covered by additionalProperties",
     {"properties": {"foo": {"type": "string"}, "bar": {"type": "string"}}, "additionalProperties": False},
     {"properties": {"foo": {"type": "string"}}, "additionalProperties": {"type": "string"}}, True),
    ("property removed, not covered by additionalProperties",
     {"properties": {"foo": {"type": "string"}, "bar": {"type": "number"}}, "additionalProperties": False},
     {"properties": {"foo": {"type": "string"}}, "additionalProperties": {"type": "string"}}, False),
]


def parse(schema_type: str, text: str) -> formats.ParsedSchema:
    return formats.parse(schema_type, text)


@pytest.mark.parametrize(("old", "new", "backward", "forward"), [c[1:] for c in AVRO_CASES],
                         ids=[c[0] for c in AVRO_CASES])
def test_avro_every_mode(old: str, new: str, backward: bool, forward: bool) -> None:
    old_schema, new_schema = parse("AVRO", old), parse("AVRO", new)
    expected = {"NONE": True, "BACKWARD": backward, "FORWARD": forward, "FULL": backward and forward}
    for level, compatible in expected.items():
        for suffix in ("", "_TRANSITIVE") if level != "NONE" else ("",):
            problems = compatibility.check(level + suffix, new_schema, [old_schema])
            assert (not problems) == compatible, f"{level}{suffix}: {problems}"


@pytest.mark.parametrize(("original", "update", "compatible"), [c[1:] for c in PROTOBUF_CASES],
                         ids=[c[0] for c in PROTOBUF_CASES])
def test_protobuf_backward(original: str, update: str, compatible: bool) -> None:
    problems = compatibility.check("BACKWARD", parse("PROTOBUF", update), [parse("PROTOBUF", original)])
    assert (not problems) == compatible, problems


@pytest.mark.parametrize(("original", "update", "compatible"), [c[1:] for c in JSON_CASES],
                         ids=[c[0] for c in JSON_CASES])
def test_json_backward(original: dict, update: dict, compatible: bool) -> None:
    problems = compatibility.check("BACKWARD", parse("JSON", json.dumps(update)),
                                   [parse("JSON", json.dumps(original))])
    assert (not problems) == compatible, problems


def test_table_is_large_enough() -> None:
    assert len(AVRO_CASES) + len(PROTOBUF_CASES) + len(JSON_CASES) >= 60


# Transitive chains: v1 {a}, v2 {a, b="x"}, v3 {a, b} (b without default). v3 reads v2's data (b present) but
# not v1's: only the _TRANSITIVE levels look back to v1 (Confluent's documented example).
CHAIN = [avro([A]), avro([A, f("b", "string", default="x")]), avro([A, f("b", "string")])]


@pytest.mark.parametrize(("level", "compatible"), [
    ("BACKWARD", True), ("BACKWARD_TRANSITIVE", False), ("FULL", True), ("FULL_TRANSITIVE", False),
    ("FORWARD", True), ("FORWARD_TRANSITIVE", True), ("NONE", True),
])
def test_avro_transitive_chain(level: str, compatible: bool) -> None:
    v1, v2, v3 = (parse("AVRO", s) for s in CHAIN)
    assert (not compatibility.check(level, v3, [v1, v2])) == compatible


def test_forward_transitive_chain() -> None:
    # v1 {a, b}, v2 {a, b="x"}, v3 {a}: v2 reads v3's data (default for b), v1 cannot (b has no default).
    v1, v2, v3 = (parse("AVRO", s) for s in (avro([A, f("b", "string")]),
                                             avro([A, f("b", "string", default="x")]), avro([A])))
    assert not compatibility.check("FORWARD", v3, [v1, v2])
    assert compatibility.check("FORWARD_TRANSITIVE", v3, [v1, v2])
    assert not compatibility.check("BACKWARD_TRANSITIVE", v3, [v1, v2])


def test_json_transitive_chain_closed_model() -> None:
    # A closed model gains an optional property (backward compatible), then requires it: not backward
    # compatible (v2's documents may lack it). v2 reads v3's documents, but the closed v1 cannot (b is unknown
    # to it), so only FORWARD_TRANSITIVE fails.
    v1 = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    v2 = {**v1, "properties": {**v1["properties"], "b": {"type": "string"}}}
    v3 = {**v2, "required": ["b"]}
    parsed = [parse("JSON", json.dumps(s)) for s in (v1, v2, v3)]
    assert not compatibility.check("BACKWARD", parsed[1], parsed[:1])
    assert compatibility.check("BACKWARD", parsed[2], parsed[:2])
    assert compatibility.check("FORWARD", parsed[2], parsed[:2]) == []
    assert compatibility.check("FORWARD_TRANSITIVE", parsed[2], parsed[:2])


def _mirrored(cases: list, schema_type: str) -> list:
    """Cases whose reverse change is also in the table: there FORWARD is the reverse case's answer, and FULL
    needs both, so these pairs test the other levels from the same facts."""
    answers = {(c[1] if isinstance(c[1], str) else json.dumps(c[1]), c[2] if isinstance(c[2], str)
                else json.dumps(c[2])): c[3] for c in cases}
    result = []
    for (original, update), backward in answers.items():
        if (update, original) in answers:
            result.append(pytest.param(schema_type, original, update, backward, answers[(update, original)],
                                       id=f"{schema_type}-{len(result)}"))
    return result


@pytest.mark.parametrize(("schema_type", "original", "update", "backward", "forward"),
                         _mirrored(PROTOBUF_CASES, "PROTOBUF") + _mirrored(JSON_CASES, "JSON"))
def test_json_and_protobuf_forward_and_full_from_mirrored_cases(schema_type, original, update, backward, forward):
    old, new = parse(schema_type, original), parse(schema_type, update)
    for level, compatible in (("BACKWARD", backward), ("FORWARD", forward), ("FULL", backward and forward),
                              ("FULL_TRANSITIVE", backward and forward), ("NONE", True)):
        problems = compatibility.check(level, new, [old])
        assert (not problems) == compatible, f"{level}: {problems}"


def test_mirrored_cases_exist():
    assert len(_mirrored(PROTOBUF_CASES, "PROTOBUF")) >= 6 and len(_mirrored(JSON_CASES, "JSON")) >= 6
