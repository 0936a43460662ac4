"""A loopback stand-in for the Hugging Face Hub's upload API, for the upload-path tests.

This is NOT the Hub's server: it implements just the requests that the real
``huggingface_hub`` client sends for ``create_repo`` and ``upload_folder`` (repo creation,
README metadata validation, pre-upload mode negotiation answered with "regular" uploads, and
the NDJSON commit), records every request in a JSON-lines log, and turns each commit into a
real git commit in ``<repos>/<org>/<name>`` — the folder the local mirror (olah) serves — so
the uploaded files can then be downloaded and loaded through a Hub-compatible server.

``python tests/hub_recording_endpoint.py --port P --repos DIR --log FILE``
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GIT = ["git", "-c", "user.name=siamhub-tests", "-c", "user.email=tests@siamhub.invalid"]


def git(repo: Path, *args: str) -> str:
    out = subprocess.run([*GIT, "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return out.stdout.strip()


class Handler(BaseHTTPRequestHandler):
    repos: Path
    log: Path

    def log_message(self, *args) -> None:  # quiet; the JSON log is the record
        pass

    def _record(self, entry: dict) -> None:
        entry = {"method": self.command, "path": self.path, **entry}
        entry["authorized"] = self.headers.get("authorization", "").startswith("Bearer ")
        with self.log.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("content-length", 0)))

    def do_GET(self) -> None:
        if self.path == "/":  # the test harness's readiness probe; not a client request
            return self._reply(404, {"error": "no page here"})
        self._record({})
        self._reply(404, {"error": "not implemented by the recording endpoint"})

    def do_POST(self) -> None:
        body = self._body()
        path = self.path.split("?")[0]
        if path == "/api/repos/create":
            req = json.loads(body)
            repo = self.repos / req["organization"] / req["name"]
            if not repo.exists():
                repo.mkdir(parents=True)
                git(repo, "init", "-q", "-b", "main")
            self._record({"json": req})
            repo_id = f"{req['organization']}/{req['name']}"
            return self._reply(200, {"url": f"http://{self.headers['host']}/{repo_id}"})
        if path == "/api/validate-yaml":
            self._record({"json": json.loads(body)})
            return self._reply(200, {"errors": [], "warnings": []})
        if m := re.fullmatch(r"/api/models/([^/]+)/([^/]+)/preupload/([^/]+)", path):
            files = json.loads(body)["files"]
            self._record({"files": [f["path"] for f in files]})
            modes = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
            ]
            return self._reply(200, {"files": modes})
        if m := re.fullmatch(r"/api/models/([^/]+)/([^/]+)/commit/([^/]+)", path):
            return self._commit(self.repos / m[1] / m[2], f"{m[1]}/{m[2]}", body)
        self._record({})
        return self._reply(404, {"error": "not implemented by the recording endpoint"})

    def _commit(self, repo: Path, repo_id: str, body: bytes) -> None:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(x["value"] for x in lines if x["key"] == "header")
        files = {}
        for item in lines:
            if item["key"] != "file":
                if item["key"] != "header":
                    self._record({"unsupported": item["key"]})
                    return self._reply(400, {"error": f"unsupported operation {item['key']}"})
                continue
            data = base64.b64decode(item["value"]["content"])
            target = repo / item["value"]["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            files[item["value"]["path"]] = {
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
            }
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "--allow-empty", "-m", header["summary"])
        oid = git(repo, "rev-parse", "HEAD")
        self._record({"commit": {"summary": header["summary"], "files": files, "oid": oid}})
        url = f"http://{self.headers['host']}/{repo_id}/commit/{oid}"
        return self._reply(200, {"commitUrl": url, "commitOid": oid, "pullRequestUrl": None})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--repos", type=Path, required=True)
    p.add_argument("--log", type=Path, required=True)
    args = p.parse_args()
    Handler.repos, Handler.log = args.repos, args.log
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
