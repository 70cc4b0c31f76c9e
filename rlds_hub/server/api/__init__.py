"""The HTTP API: dependencies, schemas and one router per resource."""
