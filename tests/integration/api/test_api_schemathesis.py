"""Schemathesis against the live OpenAPI document, with a valid token: whatever it sends, the API
answers without a server error, with the status codes, content types and bodies its document
declares. Bounded (examples per operation, one worker) so the suite stays quick on 2 cores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.factories_access import make_grant
from tests.integration.api.helpers import make_api_token
from tests.integration.sandbox import helpers as sandbox_helpers

MAX_EXAMPLES = int(os.environ.get("PORTAL_SCHEMATHESIS_EXAMPLES", "10"))
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance")


def test_schemathesis_finds_no_server_errors(released_ctx, live_api, tmp_path):
    member, _, _ = sandbox_helpers.people(released_ctx)
    make_grant(released_ctx, "acme-health", "eunomia", "row-level")
    token = make_api_token(released_ctx, member)
    command = [str(Path(sys.executable).parent / "schemathesis"), "run",
               f"{live_api.base_url}/api/v1/openapi.json", "--checks", CHECKS,
               "--header", f"Authorization: Bearer {token}",
               "--max-examples", str(MAX_EXAMPLES), "--seed", "20261201", "--workers", "1",
               "--generation-database", "none", "--request-timeout", "60", "--no-color",
               "--phases", "examples,coverage,fuzzing,stateful", "--report-dir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert "passed" in done.stdout
