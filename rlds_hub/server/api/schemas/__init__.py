"""Pydantic models of the API's requests and responses: the OpenAPI document is built from
them, so it is the truth about every response."""
