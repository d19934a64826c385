"""Point 13: GET /openapi.json serves docs/openapi.json, and the live service
answers what that document says. Every route is called (success and its main
errors); each answer's status must be one the operation lists, and its
Content-Type, required headers and body must match the response the document
gives for it (bodies checked with jsonschema against the document's schemas).
Request bodies the document's schema accepts must be accepted, those it
refuses refused. GET /docs must render every operation in headless Chromium."""
import json
import os
import re
import shutil
import subprocess
import tempfile

import jsonschema

import client
from support import E2E

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DOC_PATH = os.path.join(REPO, "docs", "openapi.json")
SWAGGER_UI = os.path.join(REPO, "docs", "ui", "node_modules", "swagger-ui-dist", "swagger-ui-bundle.js")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

with open(DOC_PATH, "rb") as _f:
    DOC_BYTES = _f.read()
DOC = json.loads(DOC_BYTES)
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

TOOL = 'def add(a: int, b: int) -> int:\n    """Adds.\n    :param a: the first\n    :return: the sum"""\n    return a + b\n'


def resolve(node):
    """Follows a local $ref ("#/components/...") to what it names."""
    while isinstance(node, dict) and "$ref" in node:
        target = DOC
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def validator(schema):
    """A 2020-12 validator for a schema of the document; its $refs resolve in the document's components."""
    root = dict(schema)
    root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    root["components"] = DOC["components"]
    return jsonschema.Draft202012Validator(root)


def schema_errors(schema, value):
    return ["%s at %s" % (e.message, list(e.absolute_path)) for e in validator(schema).iter_errors(value)]


def operation(method, path):
    """(template, operation) of the document for a concrete path, or (None, None)."""
    for template, item in DOC["paths"].items():
        rx = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(rx, path) and method.lower() in item:
            return template, item[method.lower()]
    return None, None


class P13OpenAPI(E2E):
    def assertDocumented(self, method, path, r):
        """r's status is one the operation lists, with that response's media
        type, required headers and body schema. Returns r.json."""
        template, op = operation(method, path)
        self.assertIsNotNone(op, "%s %s is not in docs/openapi.json" % (method, path))
        where = "%s %s answered %d %r" % (method, path, r.status, r.body[:600])
        self.assertIn(str(r.status), op["responses"], "status not documented: " + where)
        resp = resolve(op["responses"][str(r.status)])
        for name, h in resp.get("headers", {}).items():
            h = resolve(h)
            value = r.headers.get(name.lower())
            if h.get("required"):
                self.assertIsNotNone(value, "header %s missing: %s" % (name, where))
            if value is not None and "schema" in h:
                typ = resolve(h["schema"]).get("type")
                value = int(value) if typ == "integer" else value
                self.assertEqual(schema_errors(h["schema"], value), [], "header %s: %s" % (name, where))
        ctype = r.headers.get("content-type", "").split(";")[0].strip()
        content = resp.get("content", {})
        self.assertIn(ctype, content, "Content-Type %r not documented: %s" % (ctype, where))
        if ctype == "application/json":
            self.assertTrue(r.json_ok, "not JSON: " + where)
            self.assertEqual(schema_errors(content[ctype]["schema"], r.json), [], where)
        return r.json

    def assertGenericError(self, r, status):
        """The 404/405 any path or method may get: an Error body (405: Allow names a documented method)."""
        self.assertEqual(r.status, status, r.body[:500])
        self.assertIn("application/json", r.headers.get("content-type", ""))
        self.assertEqual(schema_errors({"$ref": "#/components/schemas/Error"}, r.json), [], r.body[:500])
        return r.json

    def upload(self, data):
        r = client.raw("POST", "/v1/files", data, headers={"Content-Type": "application/octet-stream"})
        return self.assertDocumented("POST", "/v1/files", r)["object_id"]

    def post_json(self, path, body):
        text = body if isinstance(body, str) else json.dumps(body)
        return client.raw("POST", path, text)

    def request_schema(self, path):
        return DOC["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]

    # ---- the document itself ----------------------------------------------

    def test_openapi_json_is_the_document_in_the_tree(self):
        r = client.raw("GET", "/openapi.json")
        self.assertDocumented("GET", "/openapi.json", r)
        self.assertEqual(r.headers.get("content-type"), "application/json")
        self.assertEqual(r.body, DOC_BYTES, "GET /openapi.json differs from docs/openapi.json: rebuild")
        self.assertEqual(r.json["openapi"], "3.1.0")

    def test_head_openapi_json_has_no_body(self):
        r = client.raw("HEAD", "/openapi.json")
        self.assertEqual((r.status, r.body), (200, b""))
        self.assertEqual(r.headers.get("content-type"), "application/json")

    def test_every_documented_operation_answers_its_success(self):
        oid = self.upload(b"openapi e2e\n")
        calls = {
            "execute": lambda: self.post_json("/v1/execute", {"source_code": "print('hello world')"}),
            "parseCustomTool": lambda: self.post_json("/v1/parse-custom-tool", {"tool_source_code": TOOL}),
            "executeCustomTool": lambda: self.post_json("/v1/execute-custom-tool", {
                "tool_source_code": TOOL, "tool_input_json": '{"a": 1, "b": 2}'}),
            "uploadFile": lambda: client.raw("POST", "/v1/files", b"\x00\xffbytes",
                                             headers={"Content-Type": "application/octet-stream"}),
            "downloadFile": lambda: client.raw("GET", "/v1/files/" + oid),
            "healthz": lambda: client.raw("GET", "/healthz"),
            "readyz": lambda: client.raw("GET", "/readyz"),
            "metrics": lambda: client.raw("GET", "/metrics"),
            "openapi": lambda: client.raw("GET", "/openapi.json"),
            "docs": lambda: client.raw("GET", "/docs"),
        }
        seen = set()
        for template, item in DOC["paths"].items():
            for method in METHODS:
                if method not in item:
                    continue
                op = item[method]
                with self.subTest(operation=op["operationId"]):
                    self.assertIn(op["operationId"], calls, "no request in this test for %s %s: add one"
                                  % (method.upper(), template))
                    path = template.replace("{object_id}", oid)
                    r = calls[op["operationId"]]()
                    self.assertDocumented(method.upper(), path, r)
                    success = sorted(c for c in op["responses"] if c.startswith("2"))
                    if op["operationId"] != "readyz":  # 503 while the pool refills is documented too
                        self.assertIn(str(r.status), success, r.body[:500])
                    seen.add(op["operationId"])
        self.assertEqual(seen, set(calls), "operations this test calls that the document lacks")
        # and every route the service counted requests for is in the document
        metrics = client.raw("GET", "/metrics").body.decode()
        for method, route in set(re.findall(r'ci_http_requests_total\{method="(\w+)",route="([^"]+)"', metrics)):
            if method == "any":
                continue
            path = route.replace("*", "x")
            with self.subTest(route=route):
                self.assertIsNotNone(operation(method, path)[1], "%s %s is routed but not documented"
                                     % (method, route))

    # ---- POST /v1/execute ---------------------------------------------------

    def test_execute_bodies_the_schema_accepts_run_and_those_it_refuses_are_422(self):
        schema = self.request_schema("/v1/execute")
        oid = self.upload(b"input\n")
        cases = [
            {"source_code": "pass"},
            {"source_code": "pass", "timeout": 600},
            {"source_code": "pass", "timeout": 0.5},
            {"source_code": "pass", "timeout": None},
            {"source_code": "pass", "files": {}, "env": {}},
            {"source_code": "print(open('/workspace/in/a.txt').read())", "files": {"/workspace/in/a.txt": oid},
             "env": {"A_1": "x", "_b": ""}, "include_subdirectories": False},
            {"source_code": "pass", "files": {"/workspace/.hidden/..x/...": oid}},
            {},
            {"source_code": None},
            {"source_code": 1},
            {"source_code": "pass", "extra": 1},
            {"source_code": "pass", "timeout": 0},
            {"source_code": "pass", "timeout": -1},
            {"source_code": "pass", "timeout": 600.5},
            {"source_code": "pass", "timeout": "1"},
            {"source_code": "pass", "timeout": True},
            {"source_code": "pass", "include_subdirectories": "yes"},
            {"source_code": "pass", "include_subdirectories": None},
            {"source_code": "pass", "files": []},
            {"source_code": "pass", "files": {"/workspace/a": 5}},
            {"source_code": "pass", "files": {"/workspace/a": "bad id!"}},
            {"source_code": "pass", "files": {"/workspace/a": "x" * 256}},
            {"source_code": "pass", "files": {"/tmp/a": oid}},
            {"source_code": "pass", "files": {"/workspace": oid}},
            {"source_code": "pass", "files": {"/workspace/": oid}},
            {"source_code": "pass", "files": {"/workspace/../etc/passwd": oid}},
            {"source_code": "pass", "files": {"/workspace/a/./b": oid}},
            {"source_code": "pass", "files": {"/workspace/a//b": oid}},
            {"source_code": "pass", "files": {"/workspace/" + "c" * 256: oid}},
            {"source_code": "pass", "files": {"/workspace/" + "/".join(["d" * 200] * 21): oid}},
            {"source_code": "pass", "files": {"/workspace/f%d" % i: oid for i in range(1001)}},
            {"source_code": "pass", "env": []},
            {"source_code": "pass", "env": {"A": 1}},
            {"source_code": "pass", "env": {"1A": "x"}},
            {"source_code": "pass", "env": {"A-B": "x"}},
            {"source_code": "pass", "env": {"LD_PRELOAD": "x"}},
            {"source_code": "pass", "env": {"PYTHONPATH": "x"}},
            {"source_code": "pass", "env": {"E" * 256: "x"}},
            [],
            "print(1)",
        ]
        for body in cases:
            accepted = not schema_errors(schema, body)
            with self.subTest(body=json.dumps(body)[:200], schema_accepts=accepted):
                r = self.post_json("/v1/execute", body)
                self.assertDocumented("POST", "/v1/execute", r)
                self.assertEqual(r.status, 200 if accepted else 422,
                                 "the document %s this body, the service answered %d: %r"
                                 % ("accepts" if accepted else "refuses", r.status, r.body[:500]))
                if accepted:
                    self.assertEqual(r.json["exit_code"], 0, r.json["stderr"][-2000:])

    def test_execute_files_and_include_subdirectories(self):
        code = "import os\nos.makedirs('sub', exist_ok=True)\nopen('top.txt','w').write('t')\n" \
               "open('sub/low.txt','w').write('l')\n"
        for sub, expected in ((False, ["/workspace/top.txt"]),
                              (True, ["/workspace/sub/low.txt", "/workspace/top.txt"])):
            with self.subTest(include_subdirectories=sub):
                r = self.post_json("/v1/execute", {"source_code": code, "include_subdirectories": sub})
                body = self.assertDocumented("POST", "/v1/execute", r)
                self.assertEqual(sorted(body["files"]), expected)

    def test_execute_malformed_json_is_422(self):
        for text in ['{"source_code": ', "not json", "", '{"source_code": "x"} trailing',
                     '{"source_code": "a\\u0000b"}', "[" * 100 + "]" * 100]:
            with self.subTest(body=text[:40]):
                r = self.post_json("/v1/execute", text)
                self.assertEqual(r.status, 422, r.body[:500])
                self.assertDocumented("POST", "/v1/execute", r)

    def test_execute_unknown_object_is_422_naming_it(self):
        r = self.post_json("/v1/execute", {"source_code": "pass", "files": {"/workspace/x": "0" * 64}})
        body = self.assertDocumented("POST", "/v1/execute", r)
        self.assertEqual(r.status, 422)
        self.assertEqual(body["detail"][0]["loc"], ["body", "files", "/workspace/x"])
        self.assertIn("0" * 64, body["detail"][0]["msg"])

    def test_execute_body_over_the_limit_is_413(self):
        r = client.raw_headers_only("/v1/execute", 300 * 1000 * 1000)
        self.assertEqual(r.status, 413, r.body[:500])
        self.assertDocumented("POST", "/v1/execute", r)

    def test_execute_timeout_is_200_with_exit_code_minus_1(self):
        r = self.post_json("/v1/execute", {"source_code": "import time\ntime.sleep(30)", "timeout": 0.5})
        body = self.assertDocumented("POST", "/v1/execute", r)
        self.assertEqual((r.status, body["exit_code"]), (200, -1), r.body[:500])
        self.assertIn("Execution timed out", body["stderr"])

    # ---- custom tools -------------------------------------------------------

    def test_parse_custom_tool_answers(self):
        schema = self.request_schema("/v1/parse-custom-tool")
        cases = [
            ({"tool_source_code": TOOL}, 200),
            ({"tool_source_code": "def f(*args: int) -> int:\n    return 1\n"}, 400),
            ({"tool_source_code": "def f(:\n"}, 400),
            ({}, 422),
            ({"tool_source_code": 1}, 422),
            ({"tool_source_code": TOOL, "env": {}}, 422),
            ({"tool_source_code": TOOL, "tool_input_json": "{}"}, 422),
        ]
        for body, status in cases:
            with self.subTest(body=body, status=status):
                self.assertEqual(not schema_errors(schema, body), status != 422, "the document disagrees")
                r = self.post_json("/v1/parse-custom-tool", body)
                self.assertEqual(r.status, status, r.body[:500])
                js = self.assertDocumented("POST", "/v1/parse-custom-tool", r)
                if status == 200:
                    json.loads(js["tool_input_schema_json"])
                if status == 400:
                    self.assertIn("error_messages", js)

    def test_execute_custom_tool_answers(self):
        schema = self.request_schema("/v1/execute-custom-tool")
        cases = [
            ({"tool_source_code": TOOL, "tool_input_json": '{"a": 1, "b": 2}'}, 200),
            ({"tool_source_code": TOOL, "tool_input_json": '{"a": 1, "b": 2}', "env": {"X": "y"}}, 200),
            ({"tool_source_code": TOOL, "tool_input_json": '{"a": "x"}'}, 400),
            ({"tool_source_code": TOOL, "tool_input_json": "not json"}, 400),
            ({"tool_source_code": "def f() -> int:\n    raise ValueError('no')\n", "tool_input_json": "{}"}, 400),
            ({"tool_source_code": TOOL}, 422),
            ({"tool_input_json": "{}"}, 422),
            ({"tool_source_code": TOOL, "tool_input_json": {"a": 1}}, 422),
            ({"tool_source_code": TOOL, "tool_input_json": "{}", "env": {"LD_X": "1"}}, 422),
            ({"tool_source_code": TOOL, "tool_input_json": "{}", "timeout": 1}, 422),
        ]
        for body, status in cases:
            with self.subTest(body=body, status=status):
                self.assertEqual(not schema_errors(schema, body), status != 422, "the document disagrees")
                r = self.post_json("/v1/execute-custom-tool", body)
                self.assertEqual(r.status, status, r.body[:500])
                js = self.assertDocumented("POST", "/v1/execute-custom-tool", r)
                if status == 200:
                    self.assertEqual(json.loads(js["tool_output_json"]), 3)
                if status == 400:
                    self.assertIn("stderr", js)

    # ---- files --------------------------------------------------------------

    def test_files_round_trip_and_errors(self):
        data = b"\x00\x01 some bytes \xff"
        oid = self.upload(data)
        r = client.raw("GET", "/v1/files/" + oid)
        self.assertDocumented("GET", "/v1/files/" + oid, r)
        self.assertEqual((r.status, r.body), (200, data))
        self.assertEqual(r.headers.get("content-length"), str(len(data)))
        param = resolve(DOC["paths"]["/v1/files/{object_id}"]["get"]["parameters"][0]["schema"])
        for oid, status in (("0" * 64, 404), ("no_such-object", 404), ("a.b", 422), ("x" * 256, 422),
                            ("%2e%2e", 422)):
            with self.subTest(object_id=oid):
                self.assertEqual(not schema_errors(param, oid), status == 404, "the document disagrees")
                r = client.raw("GET", "/v1/files/" + oid)
                self.assertEqual(r.status, status, r.body[:500])
                self.assertDocumented("GET", "/v1/files/" + oid, r)

    def test_upload_over_the_limit_is_413(self):
        r = client.raw_headers_only("/v1/files", 300 * 1000 * 1000, b"x")
        self.assertEqual(r.status, 413, r.body[:500])
        self.assertDocumented("POST", "/v1/files", r)

    # ---- what any path may get ----------------------------------------------

    def test_wrong_method_is_405_naming_a_documented_method(self):
        for method, path in (("GET", "/v1/execute"), ("PUT", "/v1/parse-custom-tool"),
                             ("GET", "/v1/execute-custom-tool"), ("GET", "/v1/files"),
                             ("DELETE", "/v1/files/abc"), ("POST", "/healthz"), ("POST", "/readyz"),
                             ("POST", "/metrics"), ("POST", "/openapi.json")):
            with self.subTest(method=method, path=path):
                r = client.raw(method, path, b"{}" if method != "GET" else None)
                self.assertGenericError(r, 405)
                allow = r.headers.get("allow", "")
                self.assertIsNotNone(operation(allow, path)[1], "Allow: %r is not documented for %s"
                                     % (allow, path))

    def test_unknown_path_is_404(self):
        for path in ("/nope", "/v1/execute/x", "/v1/files/a/b", "/openapi.yaml"):
            with self.subTest(path=path):
                self.assertIsNone(operation("GET", path)[1])
                self.assertGenericError(client.raw("GET", path), 404)

    # ---- GET /docs ------------------------------------------------------------

    def test_docs_renders_every_operation_in_chromium(self):
        if not CHROMIUM:
            self.skipTest("chromium is not installed (scripts/deps.sh installs it)")
        if not os.path.exists(SWAGGER_UI):
            self.skipTest("swagger-ui-dist is not installed in docs/ui (make docs-ui)")
        r = client.raw("GET", "/docs/dist/swagger-ui-bundle.js")
        self.assertEqual(r.status, 200)
        self.assertIn("javascript", r.headers.get("content-type", ""))
        profile = tempfile.mkdtemp(prefix="ci-e2e-chromium-")
        try:
            p = subprocess.run(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--user-data-dir=" + profile, "--virtual-time-budget=20000", "--dump-dom",
                 "http://%s:%d/docs" % (client.HOST, client.port())],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        dom = p.stdout.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        self.assertIn(DOC["info"]["title"], dom)
        self.assertNotIn("Failed to load API definition", dom)
        for template, item in DOC["paths"].items():
            for method in METHODS:
                if method in item:
                    with self.subTest(operation="%s %s" % (method, template)):
                        self.assertRegex(dom, r'class="opblock opblock-%s[^"]*"' % method)
                        self.assertIn('data-path="%s"' % template, dom)
                        self.assertIn(item[method]["summary"], dom)
