"""The HTTP service and the `kb` command line: the edge over `kb` and `ingest`.

    app.py, routes.py, kb_routes.py, openai_routes.py   FastAPI: the routes
    schemas.py, kb_schemas.py                            request and response models
    deps.py, keys.py, logs.py, streaming.py, docs.py     what the routes share
    mcp_server.py, mcp_bounds.py                         MCP (`/mcp` and `kb mcp`)
    cli.py, cli_*.py                                     the `kb` command, one module a command

Imports `kb` and `ingest` by their public names only (tests/test_architecture.py).
"""
