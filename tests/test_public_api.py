"""The public surface is guarded: ``asgikit.__all__`` is exactly the documented names."""

from __future__ import annotations

import importlib
import subprocess
import sys

import asgikit

# DESIGN.md's public surface, plus the names the issues added.
DOCUMENTED = {
    "stack", "router", "route", "websocket_route", "mount", "host", "url_path_for",
    "NoMatchFound", "Convertor", "register_convertor",
    "Request", "WebSocket", "HTTPException", "WebSocketDisconnect",
    "Response", "PlainTextResponse", "HTMLResponse", "JSONResponse", "RedirectResponse",
    "StreamingResponse", "EventSourceResponse", "ServerSentEvent", "FileResponse",
    "BackgroundTask", "BackgroundTasks", "FormData", "UploadFile", "Broadcast",
    "cors", "compress", "sessions", "trusted_host", "https_redirect", "proxy_headers",
    "server_errors", "request_id", "body_limit", "security_headers", "timing", "timeout", "csrf",
    "websocket_origin", "lifespan", "static_files",
    "http_middleware", "authentication", "requires", "exception_handlers",
    "rate_limit",
    "telemetry",
}  # fmt: skip

SUBMODULE_NAMES = {
    "asgikit.endpoints": ["HTTPEndpoint", "WebSocketEndpoint"],
    "asgikit.templating": ["Jinja2Templates"],
    "asgikit.config": ["Config"],
    "asgikit.proxy": ["reverse_proxy"],
    "asgikit.testing": ["TestClient"],
    "asgikit.schemas": ["SchemaGenerator", "OpenAPIResponse", "schema"],
}


def test_all_is_exactly_the_documented_names() -> None:
    assert set(asgikit.__all__) == DOCUMENTED


def test_every_exported_name_resolves_and_has_a_docstring() -> None:
    for name in asgikit.__all__:
        value = getattr(asgikit, name)
        assert value.__doc__, f"{name} has no docstring"


def test_submodule_names_resolve() -> None:
    for module_name, names in SUBMODULE_NAMES.items():
        module = importlib.import_module(module_name)
        for name in names:
            assert getattr(module, name).__doc__, f"{module_name}.{name}"


def test_importing_one_middleware_does_not_load_the_router() -> None:
    # Pay only for what is used: lazy exports keep unrelated pieces unloaded.
    code = (
        "import sys; from asgikit import cors; "
        "print('asgikit.routing' in sys.modules, 'asgikit.forms' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_names_shared_with_submodules_stay_the_functions() -> None:
    code = (
        "import asgikit.lifespan, asgikit.authentication\n"
        "from asgikit import lifespan, authentication\n"
        "print(callable(lifespan), type(lifespan).__name__, type(authentication).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "function", "function"]


def test_a_submodule_imported_by_its_shared_name_has_its_public_names() -> None:
    # Type checkers see ``asgikit.authentication`` here as the module.
    code = (
        "import asgikit.authentication as auth, asgikit.lifespan as ls\n"
        "from asgikit import authentication\n"
        "print(auth.BaseUser.__name__, auth.requires.__name__, ls.Handler is not None,"
        " authentication is auth)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["BaseUser", "requires", "True", "True"]
