"""OpenAI's batch API over in-memory files: `POST /v1/files`, `GET /v1/files/{id}/content`,
`POST /v1/batches` and `GET /v1/batches/{id}`."""

from __future__ import annotations

import json
import random
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from synthdistill.testing.scripted_server.completions import complete
from synthdistill.testing.scripted_server.errors import error_response

if TYPE_CHECKING:
    from synthdistill.testing.scripted_server.server import ScriptedServer


class BatchAPI:
    """Files and batch jobs, kept while the server object lives; a job completes on a poll past its delay."""

    def __init__(self, server: ScriptedServer, rng: random.Random) -> None:
        """Read the delay and line error rate from `server`; draw the failed lines from `rng`."""
        self._server = server
        self._rng = rng
        self._files: dict[str, dict[str, Any]] = {}
        self._batches: dict[str, dict[str, Any]] = {}

    def add_routes(self, app: web.Application) -> None:
        """Route the file and batch paths of `app` here."""
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{file_id}/content", self._file_content)
        app.router.add_post("/v1/batches", self._create_batch)
        app.router.add_get("/v1/batches/{batch_id}", self._get_batch)

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField) or form.get("purpose") != "batch":
            return error_response(
                400, "Send a multipart form with purpose=batch and a file.", "invalid_request_error"
            )
        content = upload.file.read()
        file_id = f"file-{len(self._files) + 1:06d}"
        self._files[file_id] = {"content": content, "filename": upload.filename}
        return web.json_response(_file_object(file_id, upload.filename, len(content)))

    async def _file_content(self, request: web.Request) -> web.Response:
        file = self._files.get(request.match_info["file_id"])
        if file is None:
            return error_response(404, "No such file.", "invalid_request_error")
        return web.Response(body=file["content"], content_type="application/octet-stream")

    async def _create_batch(self, request: web.Request) -> web.Response:
        body = await request.json()
        file = self._files.get(body.get("input_file_id", ""))
        if file is None or body.get("endpoint") != "/v1/chat/completions":
            return error_response(
                400,
                "input_file_id must name an uploaded file; endpoint /v1/chat/completions.",
                "invalid_request_error",
            )
        batch_id = f"batch_{len(self._batches) + 1:06d}"
        lines = [json.loads(line) for line in file["content"].decode().splitlines() if line.strip()]
        self._batches[batch_id] = {
            "created": time.time(),
            "due": time.monotonic() + self._server.batch_delay_s,
            "input_file_id": body["input_file_id"],
            "lines": lines,
            "output_file_id": None,
            "error_file_id": None,
            "counts": {"total": len(lines), "completed": 0, "failed": 0},
        }
        return web.json_response(self._batch_object(batch_id))

    async def _get_batch(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["batch_id"]
        batch = self._batches.get(batch_id)
        if batch is None:
            return error_response(404, "No such batch.", "invalid_request_error")
        if batch["output_file_id"] is None and time.monotonic() >= batch["due"]:
            await self._finish_batch(batch_id, batch)
        return web.json_response(self._batch_object(batch_id))

    async def _finish_batch(self, batch_id: str, batch: dict[str, Any]) -> None:
        outputs, errors = [], []
        for number, line in enumerate(batch["lines"]):
            custom_id = line.get("custom_id")
            if self._rng.random() < self._server.batch_line_error_rate:
                body = {"error": {"message": "The scripted server failed this line.", "type": "server_error"}}
                errors.append(
                    {
                        "id": f"{batch_id}-{number}",
                        "custom_id": custom_id,
                        "response": {"status_code": 500, "body": body},
                        "error": None,
                    }
                )
                continue
            payload = await complete(self._server, line["body"], truncate=False)
            outputs.append(
                {
                    "id": f"{batch_id}-{number}",
                    "custom_id": custom_id,
                    "response": {"status_code": 200, "request_id": f"req-{number}", "body": payload},
                    "error": None,
                }
            )
        for kind, rows in (("output_file_id", outputs), ("error_file_id", errors)):
            if rows:
                file_id = f"file-{len(self._files) + 1:06d}"
                content = "".join(json.dumps(row) + "\n" for row in rows).encode()
                self._files[file_id] = {"content": content, "filename": f"{batch_id}-{kind}.jsonl"}
                batch[kind] = file_id
        batch["output_file_id"] = batch["output_file_id"] or ""
        batch["counts"].update(completed=len(outputs), failed=len(errors))

    def _batch_object(self, batch_id: str) -> dict[str, Any]:
        batch = self._batches[batch_id]
        done = batch["output_file_id"] is not None
        return {
            "id": batch_id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "created_at": int(batch["created"]),
            "input_file_id": batch["input_file_id"],
            "status": "completed" if done else "in_progress",
            "output_file_id": batch["output_file_id"] or None,
            "error_file_id": batch["error_file_id"],
            "request_counts": batch["counts"],
        }


def _file_object(file_id: str, filename: str, size: int) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": "batch",
        "status": "processed",
    }
