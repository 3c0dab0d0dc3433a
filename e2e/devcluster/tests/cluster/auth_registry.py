"""A registry gate that wants HTTP Basic credentials: answers 401 with a Basic challenge unless the
request carries the expected ones, and forwards authorised requests to the test registry. Prints its
port, then serves until killed. Usage: auth_registry.py UPSTREAM_HOST:PORT USER PASSWORD"""
import base64
import http.server
import sys
import urllib.error
import urllib.request

upstream, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Gate(http.server.BaseHTTPRequestHandler):
    def handle_one(self, method):
        if self.headers.get("Authorization") != expected:
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="ephemera-test"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization")}
        req = urllib.request.Request(f"http://{upstream}{self.path}", method=method, headers=headers)
        try:
            resp = urllib.request.urlopen(req)
            status, rheaders, body = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, rheaders, body = e.code, e.headers, e.read()
        self.send_response(status)
        for k, v in rheaders.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        self.handle_one("GET")

    def do_HEAD(self):
        self.handle_one("HEAD")

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gate)
print(server.server_address[1], flush=True)
server.serve_forever()
