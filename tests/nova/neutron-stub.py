#!/usr/bin/python3
"""The networking API's smallest stand-in, so that Nova (Zed) runs without Neutron.

Nova Zed has no "no network" mode: with `--nic none` it allocates no port at build time, but
server show, reboot, start, rescue, resize, delete and the info-cache heal task still ask the
networking API for the instance's ports. Every list answers [] (no ports), every single resource
404, DELETE 204, and writes 400: nothing is ever created. Each request is logged to stderr.

    neutron-stub.py PORT
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


class NetworkingApi(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, code, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _resource_path(self):
        parts = [p for p in urlparse(self.path).path.split("/") if p]
        if parts and parts[0] == "v2.0":
            parts = parts[1:]
        return [p[:-5] if p.endswith(".json") else p for p in parts]

    def do_GET(self):
        parts = self._resource_path()
        if not parts:
            return self._answer(200, {"versions": [{"id": "v2.0", "status": "CURRENT"}]})
        if len(parts) == 1:
            return self._answer(200, {parts[0].replace("-", "_"): []})
        return self._answer(404, {"NeutronError": {
            "type": "NotFound", "message": f"no {parts[0]} {parts[1]} (networking stand-in)", "detail": ""}})

    def do_DELETE(self):
        self._answer(204)

    def _refuse(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(400, {"NeutronError": {
            "type": "BadRequest", "message": "the networking stand-in creates nothing", "detail": ""}})

    do_POST = _refuse
    do_PUT = _refuse

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))
        sys.stderr.flush()


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), NetworkingApi).serve_forever()
