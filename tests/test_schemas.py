"""OpenAPI from routes (parity: Starlette tests/test_schemas.py), validated as OpenAPI 3.1."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
from openapi_spec_validator import validate

from asgikit import (
    PlainTextResponse,
    Request,
    cors,
    host,
    mount,
    route,
    router,
    static_files,
    websocket_route,
)
from asgikit.endpoints import HTTPEndpoint
from asgikit.schemas import OpenAPIResponse, SchemaGenerator, schema
from asgikit.testing import TestClient
from asgikit.websockets import WebSocket

generator = SchemaGenerator({"openapi": "3.1.0", "info": {"title": "Example API", "version": "1"}})


async def ws(websocket: WebSocket) -> None:
    """
    ---
    responses: {200: {description: never listed}}
    """


async def get_user(request: Request) -> PlainTextResponse:
    """Return one user.

    ---
    responses:
      200:
        description: A user.
    """
    return PlainTextResponse("")


async def list_users(request: Request) -> PlainTextResponse:
    """
    ---
    responses:
      200:
        description: A list of users.
    """
    return PlainTextResponse("")


async def create_user(request: Request) -> PlainTextResponse:
    """Create a user.
    ---
    summary: Create
    responses:
      '201':
        description: Created.
    """
    return PlainTextResponse("")


async def query_users(request: Request) -> PlainTextResponse:
    """
    ---
    responses:
      200:
        description: Users matching a query.
    """
    return PlainTextResponse("")


class Organisations(HTTPEndpoint):
    async def get(self, request: Request) -> PlainTextResponse:
        """
        ---
        responses:
          200:
            description: A list of organisations.
        """
        return PlainTextResponse("")

    @schema({"responses": {"200": {"description": "An organisation."}}})
    async def post(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("")


async def prose_only(request: Request) -> PlainTextResponse:
    """Returns: the user, or 404.

    A docstring that YAML would read as a mapping, and is prose.
    """
    return PlainTextResponse("")


async def no_docstring(request: Request) -> PlainTextResponse:
    return PlainTextResponse("")


@schema(
    {
        "summary": "A file",
        "parameters": [
            {"name": "rest", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "responses": {200: {"description": "The file."}},
    }
)
async def download(request: Request) -> PlainTextResponse:
    return PlainTextResponse("")


async def measure(request: Request) -> PlainTextResponse:
    """
    ---
    responses: {200: {description: A measurement.}}
    """
    return PlainTextResponse("")


async def sub_endpoint(request: Request) -> PlainTextResponse:
    """
    ---
    responses:
      200:
        description: Part of a sub-app.
    """
    return PlainTextResponse("")


subapp = router(route("/sub-endpoint", sub_endpoint))

app = router(
    websocket_route("/ws", ws),
    route("/users/{id:int}", get_user),
    route("/users", list_users),
    route("/users", create_user, methods=["POST"]),
    route("/users", query_users, methods=["QUERY"]),
    route("/orgs", Organisations),
    route("/prose", prose_only),
    route("/no-docstring", no_docstring),
    route("/files/{rest:path}", download),
    route("/sensors/{sensor:uuid}/at/{t:float}", measure),
    route("/openapi.json", generator.OpenAPIResponse),
    mount("/subapp", subapp),
    mount("/t/{tenant}", cors(subapp, allow_origins=["*"])),  # a router inside middleware
    mount("/static", static_files(directory=".")),
    host("sub.example.org", router(mount("/subapp2", subapp))),
)

ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}


def test_schema_generation() -> None:
    document = generator.get_schema(app)
    assert document == {
        "openapi": "3.1.0",
        "info": {"title": "Example API", "version": "1"},
        "paths": {
            "/users/{id}": {
                "get": {"responses": {"200": {"description": "A user."}}, "parameters": [ID]}
            },
            "/users": {
                "get": {"responses": {"200": {"description": "A list of users."}}},
                "post": {"summary": "Create", "responses": {"201": {"description": "Created."}}},
            },
            "/orgs": {
                "get": {"responses": {"200": {"description": "A list of organisations."}}},
                "post": {"responses": {"200": {"description": "An organisation."}}},
            },
            "/files/{rest}": {
                # The @schema mapping wins; a path parameter it declares is not added twice.
                "get": {
                    "summary": "A file",
                    "parameters": [
                        {
                            "name": "rest",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {"200": {"description": "The file."}},
                }
            },
            "/sensors/{sensor}/at/{t}": {
                "get": {
                    "responses": {"200": {"description": "A measurement."}},
                    "parameters": [
                        {
                            "name": "sensor",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "format": "uuid"},
                        },
                        {
                            "name": "t",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "number"},
                        },
                    ],
                }
            },
            "/subapp/sub-endpoint": {
                "get": {"responses": {"200": {"description": "Part of a sub-app."}}}
            },
            "/t/{tenant}/sub-endpoint": {
                "get": {
                    "responses": {"200": {"description": "Part of a sub-app."}},
                    "parameters": [
                        {
                            "name": "tenant",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                }
            },
            "/subapp2/sub-endpoint": {
                "get": {"responses": {"200": {"description": "Part of a sub-app."}}}
            },
        },
    }


def test_the_document_validates_against_the_openapi_3_1_schema() -> None:
    validate(generator.get_schema(app))


def test_prose_docstrings_websockets_and_head_are_not_operations() -> None:
    paths = generator.get_schema(app)["paths"]
    assert "/prose" not in paths
    assert "/no-docstring" not in paths
    assert "/ws" not in paths
    assert "/static" not in paths
    assert all("head" not in item for item in paths.values())


def test_query_needs_openapi_3_2() -> None:
    assert "query" not in generator.get_schema(app)["paths"]["/users"]
    newer = SchemaGenerator({"openapi": "3.2.0", "info": {"title": "x", "version": "1"}})
    assert newer.get_schema(app)["paths"]["/users"]["query"] == {
        "responses": {"200": {"description": "Users matching a query."}}
    }


def test_get_schema_takes_a_list_of_routes_like_starlettes() -> None:
    document = generator.get_schema(routes=[route("/users", list_users)])
    assert list(document["paths"]) == ["/users"]


def test_get_schema_refuses_an_app_without_a_router() -> None:
    with pytest.raises(TypeError, match="no asgikit router"):
        generator.get_schema(static_files(directory="."))


def test_schema_endpoint_serves_json() -> None:
    response = TestClient(cors(app, allow_origins=["*"])).get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.oai.openapi+json"
    assert response.json() == generator.get_schema(app)


def test_openapi_response_takes_a_mapping() -> None:
    assert OpenAPIResponse({"openapi": "3.1.0"}).body == b'{"openapi":"3.1.0"}'
    with pytest.raises(TypeError):
        OpenAPIResponse(["not", "a", "document"])
    with pytest.raises(TypeError):
        schema(["not a mapping"])  # type: ignore[arg-type]


def test_docstring_yaml_without_pyyaml_is_a_clear_error() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["yaml"] = None  # as if PyYAML were not installed
        from asgikit import PlainTextResponse, route, router
        from asgikit.schemas import SchemaGenerator, schema
        async def plain(request):
            '''Prose only: no YAML needed.'''
        @schema({"responses": {"200": {"description": "ok"}}})
        async def mapped(request):
            '''Described by a mapping.'''
        async def yaml_doc(request):
            '''
            ---
            responses: {}
            '''
        generator = SchemaGenerator({"info": {"title": "t", "version": "1"}})
        print(list(generator.get_schema(router(route("/a", plain), route("/b", mapped)))["paths"]))
        try:
            generator.get_schema(router(route("/c", yaml_doc)))
        except RuntimeError as exc:
            print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second = out.stdout.strip().splitlines()
    assert first == "['/b']"
    assert "pip install pyyaml" in second
    assert "yaml_doc" in second


def test_base_schema_is_not_changed_by_generation() -> None:
    base: dict[str, Any] = {"info": {"title": "t", "version": "1"}}
    SchemaGenerator(base).get_schema(app)
    assert base == {"info": {"title": "t", "version": "1"}}


def test_a_route_schema_describes_that_route_before_decorator_and_docstring() -> None:
    async def listing(request: Any) -> Any:
        """Docstring.

        ---
        responses:
          200:
            description: From the docstring.
        """

    routes = router(
        route("/a", listing, schema={"responses": {"200": {"description": "From the route."}}}),
        route("/b", listing),
    )
    paths = SchemaGenerator(
        {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}}
    ).get_schema(routes)["paths"]
    assert paths["/a"]["get"]["responses"]["200"]["description"] == "From the route."
    assert paths["/b"]["get"]["responses"]["200"]["description"] == "From the docstring."


def test_a_route_schema_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="schema= takes a mapping"):
        route("/a", PlainTextResponse("x"), schema=["not", "a", "mapping"])  # type: ignore[arg-type]
