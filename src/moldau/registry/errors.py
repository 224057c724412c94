"""Confluent Schema Registry's REST errors: an HTTP status plus a five-digit `error_code`.

The codes are Confluent's (io.confluent.kafka.schemaregistry.rest.exceptions.Errors), because clients such as
confluent-kafka's SchemaRegistryClient and the Java serializers branch on them.
"""

from __future__ import annotations

from moldau.errors import MoldauError


class RegistryError(MoldauError):
    """An error answered to a REST client as `{"error_code": ..., "message": ...}`."""

    status = 500
    error_code = 50001
    default_message = "Error in the backend data store"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message

    def to_json(self) -> dict[str, object]:
        return {"error_code": self.error_code, "message": self.message}


def _error(name: str, status: int, error_code: int, message: str) -> type[RegistryError]:
    return type(name, (RegistryError,), {"status": status, "error_code": error_code, "default_message": message})


SubjectNotFound = _error("SubjectNotFound", 404, 40401, "Subject not found.")
VersionNotFound = _error("VersionNotFound", 404, 40402, "Version not found.")
SchemaNotFound = _error("SchemaNotFound", 404, 40403, "Schema not found")
SubjectSoftDeleted = _error("SubjectSoftDeleted", 404, 40404, "Subject was soft deleted. Set permanent=true "
                            "to delete permanently")
SubjectNotSoftDeleted = _error("SubjectNotSoftDeleted", 404, 40405, "Subject must be soft deleted first "
                               "before being permanently deleted")
SchemaVersionSoftDeleted = _error("SchemaVersionSoftDeleted", 404, 40406, "Version was soft deleted. Set "
                                  "permanent=true to delete permanently")
SchemaVersionNotSoftDeleted = _error("SchemaVersionNotSoftDeleted", 404, 40407, "Version must be soft deleted "
                                     "first before being permanently deleted")
SubjectCompatibilityNotConfigured = _error("SubjectCompatibilityNotConfigured", 404, 40408,
                                           "Subject does not have subject-level compatibility configured")
SubjectModeNotConfigured = _error("SubjectModeNotConfigured", 404, 40409,
                                  "Subject does not have subject-level mode configured")
IncompatibleSchema = _error("IncompatibleSchema", 409, 409, "Schema being registered is incompatible with an "
                            "earlier schema")
InvalidSchema = _error("InvalidSchema", 422, 42201, "Invalid schema")
InvalidVersion = _error("InvalidVersion", 422, 42202, "The specified version is not a valid version id. "
                        "Allowed values are between [1, 2^31-1] and the string \"latest\"")
InvalidCompatibilityLevel = _error("InvalidCompatibilityLevel", 422, 42203, "Invalid compatibility level. "
                                   "Valid values are none, backward, forward, full, backward_transitive, "
                                   "forward_transitive, and full_transitive")
InvalidMode = _error("InvalidMode", 422, 42204, "Invalid mode. Valid values are READWRITE, READONLY, IMPORT")
OperationNotPermitted = _error("OperationNotPermitted", 422, 42205, "Operation not permitted")
ReferenceExists = _error("ReferenceExists", 422, 42206, "One or more references exist to the schema")
IdDoesNotMatch = _error("IdDoesNotMatch", 422, 42207, "Schema already registered with another id")
UnprocessableEntity = _error("UnprocessableEntity", 422, 422, "Unprocessable entity")
BadRequest = _error("BadRequest", 400, 400, "Bad request")
Unauthorized = _error("Unauthorized", 401, 401, "Unauthorized")
NotFound = _error("NotFound", 404, 404, "HTTP 404 Not Found")
MethodNotAllowed = _error("MethodNotAllowed", 405, 405, "HTTP 405 Method Not Allowed")
NotAcceptable = _error("NotAcceptable", 406, 406, "HTTP 406 Not Acceptable")
PayloadTooLarge = _error("PayloadTooLarge", 413, 413, "Request entity too large")
UnsupportedMediaType = _error("UnsupportedMediaType", 415, 415, "HTTP 415 Unsupported Media Type")
StoreError = _error("StoreError", 500, 50001, "Error in the backend data store")
StoreTimeout = _error("StoreTimeout", 500, 50002, "Operation timed out")
