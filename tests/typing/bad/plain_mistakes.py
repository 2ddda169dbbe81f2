"""Mistakes in a plain asgikit app: each line after an ``# expect`` comment must fail so.

A direct call goes through the middleware's overloads (with the app, without
it), so both checkers report the call as matching no overload and list the
argument types; through Starlette's ``Middleware`` they name the option.
"""

from __future__ import annotations

import asgikit.authentication as auth
from asgikit import PlainTextResponse, compress, cors, sessions, stack

endpoint = PlainTextResponse("hello")

# expect mypy: matches argument types "PlainTextResponse", "list[str]"
# expect pyright: Argument types: (PlainTextResponse, list[str])
misspelt = cors(endpoint, allow_origin=["*"])
# expect mypy: matches argument types "PlainTextResponse", "str"
# expect pyright: "Literal['500']" cannot be assigned to parameter "minimum_size"
wrong_type = compress(endpoint, minimum_size="500")
# expect mypy: matches argument type "list[str]"
# expect pyright: Argument types: (list[str])
misspelt_layer = stack(cors(allow_origin=["*"]), endpoint)
# expect mypy: matches argument type "str"
# expect pyright: "Literal['500']" cannot be assigned to parameter "minimum_size"
wrong_type_layer = stack(compress(minimum_size="500"), endpoint)
# expect mypy: matches argument types "PlainTextResponse", "list[str]"
# expect pyright: Argument types: (PlainTextResponse, list[str])
option_by_position = cors(endpoint, ["*"])
# expect mypy: matches argument type "PlainTextResponse"
# expect pyright: Argument types: (PlainTextResponse)
no_secret_key = sessions(endpoint)
# expect mypy: Module has no attribute "BaseUsr"
# expect pyright: "BaseUsr" is not a known attribute of module "asgikit.authentication"
no_such_name = auth.BaseUsr
