"""Mistakes with asgikit middleware in Starlette: each line after ``# expect`` must fail so."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from asgikit import compress, cors

app = Starlette(
    middleware=[
        # expect mypy: Unexpected keyword argument "allow_origin" for "Middleware"
        # expect pyright: No parameter named "allow_origin"
        Middleware(cors, allow_origin=["*"]),
        # expect mypy: Argument "minimum_size" to "Middleware" has incompatible type "str"
        # expect pyright: "Literal['500']" cannot be assigned to parameter "minimum_size"
        Middleware(compress, minimum_size="500"),
    ]
)
# expect mypy: Unexpected keyword argument "allow_origin" for "add_middleware"
# expect pyright: No parameter named "allow_origin"
app.add_middleware(cors, allow_origin=["*"])
# expect mypy: Argument "minimum_size" to "add_middleware" of "Starlette" has incompatible type
# expect pyright: "Literal['500']" cannot be assigned to parameter "minimum_size"
app.add_middleware(compress, minimum_size="500")
