"""The smallest asgikit app: one route.  Run: uvicorn examples.hello:app"""

from asgikit import PlainTextResponse, Request, route, router


async def hello(request: Request) -> PlainTextResponse:
    name = request.query_params.get("name", "world")
    return PlainTextResponse(f"Hello, {name}!")


app = router(route("/", hello))
