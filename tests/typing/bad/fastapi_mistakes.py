"""Mistakes with asgikit middleware in FastAPI: each line after ``# expect`` must fail so."""

from __future__ import annotations

from fastapi import FastAPI

from asgikit import cors, sessions

app = FastAPI()
# expect mypy: Unexpected keyword argument "allow_credential" for "add_middleware"
# expect pyright: No parameter named "allow_credential"
app.add_middleware(cors, allow_origins=["https://app.example.com"], allow_credential=True)
# expect mypy: Argument "same_site" to "add_middleware" of "Starlette" has incompatible type "None"
# expect pyright: "None" cannot be assigned to parameter "same_site"
app.add_middleware(sessions, secret_key="change me", same_site=None)
