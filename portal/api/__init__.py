"""The portal's HTTP API for automation (a startup's CI): personal access tokens, FastAPI,
uvicorn. Endpoints call the same ``portal.services`` functions as the pages and the CLI, so
every rule and every audit event is the same. See docs/api.md and
docs/decisions/0009-http-api.md."""
