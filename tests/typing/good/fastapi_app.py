"""asgikit middleware in a FastAPI app: must pass mypy --strict and pyright."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware import Middleware

from asgikit import compress, cors, security_headers, trusted_host

app = FastAPI(middleware=[Middleware(trusted_host, allowed_hosts=["example.com"])])
app.add_middleware(cors, allow_origins=["https://app.example.com"], allow_methods=["GET"])
app.add_middleware(compress, minimum_size=500)
app.add_middleware(security_headers)


@app.get("/")
async def home() -> dict[str, str]:
    return {"hello": "world"}
