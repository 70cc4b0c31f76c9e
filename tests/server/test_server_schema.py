"""Schemathesis against the service's own OpenAPI document: generated requests to every
operation (parameters that fit the document and parameters that do not, on real and on
made-up datasets, with the write token) never get a 5xx, and every response matches the
status codes, media types and schemas the document declares."""

from __future__ import annotations

import warnings

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from rlds_hub.server import Settings, create_app
from rlds_hub.testing.service import TOKEN
from rlds_hub.testing.service_data import copy_root

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
EXAMPLES = 20  # per operation, mode and dataset choice
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    root = copy_root(tmp_path_factory.mktemp("schema") / "root")
    app = create_app(
        Settings(
            roots=[root],
            token=TOKEN,
            max_json_steps=50,
            database_url=f"sqlite:///{root.parent}/index.sqlite3",
        )
    )
    service = app.state.service
    service.start()
    assert service.initial_scan_done.wait(120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    yield schema
    service.stop()


def _operations(schema):
    operations = [result.ok() for result in schema.get_all_operations()]
    # removing real datasets last, so the other operations see them
    return sorted(operations, key=lambda op: op.method.upper() == "DELETE")


def _exercise(operation, mode, path_parameters, statuses):
    strategy = operation.as_strategy(
        generation_mode=mode, path_parameters=path_parameters, headers=AUTH
    )

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        response = case.call_and_validate(checks=CHECKS)
        statuses.setdefault(operation.path, set()).add(response.status_code)

    run()


def _real_targets(operation):
    """Path parameters naming real datasets and episodes, so that successful answers are
    checked too (made-up names mostly get 404)."""
    if "{name}" not in operation.path or operation.method.upper() == "DELETE":
        return []
    if "{index}" not in operation.path:
        return [{"name": "frames"}, {"name": "oxe:oxe_like:1.0.0"}]
    targets = [{"name": "frames", "index": 1}, {"name": "oxe:oxe_like:1.0.0", "index": 2}]
    if "{step}" in operation.path:
        targets = [{**t, "step": 1} for t in targets]
    return targets


@pytest.mark.slow
def test_every_operation_answers_within_its_schema(api_schema):
    operations = _operations(api_schema)
    assert len(operations) >= 12
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        for path_parameters in [None, *_real_targets(operation)]:
            _exercise(operation, GenerationMode.POSITIVE, path_parameters, statuses)
            try:
                _exercise(operation, GenerationMode.NEGATIVE, path_parameters, statuses)
            except Unsatisfiable:
                # nothing to get wrong: no parameters, or only fixed ones
                assert operation.path in ("/healthz", "/readyz", "/api/v1/scan") or (
                    path_parameters and operation.path.count("{") == len(path_parameters)
                ), operation.path
    # every read operation answered successfully at least once, so its success schema was
    # checked, and also refused something
    for path, codes in statuses.items():
        if path.startswith("/api/v1/datasets/{name}"):
            assert any(200 <= c < 300 for c in codes), (path, codes)
            assert any(400 <= c < 500 for c in codes), (path, codes)
