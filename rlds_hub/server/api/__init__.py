"""The HTTP API: dependencies, schemas and one router per resource."""

# The versioned API's prefix: the app mounts every resource router under it (the routers'
# own prefixes leave it out); /healthz, /readyz, /docs and the viewer are outside it.
API_PREFIX = "/api/v1"
