"""Point 6: bad input gets a JSON error of the documented shape, never a crash;
the service keeps answering afterwards."""
import http.client
import json
import socket
import sqlite3
import time

import client
from support import DB_PATH, E2E


def locs(detail):
    return [d["loc"] for d in detail]


def db_rows(sql, *args):
    with sqlite3.connect("file:%s?mode=ro" % DB_PATH, uri=True, timeout=10) as c:
        return c.execute(sql, args).fetchall()


class P6BadInput(E2E):
    def post(self, body, headers=None):
        return client.raw("POST", "/v1/execute", body, headers=headers)

    def test_malformed_json_is_422_with_detail_list(self):
        for body in ['{"source_code": ', "not json", "", "{'source_code': 'x'}", '{"source_code": "x"} trailing']:
            with self.subTest(body=body):
                self.assertValidationError(self.post(body))

    def test_body_that_is_not_an_object_is_422(self):
        for body in ["[]", '"print(1)"', "42", "null"]:
            with self.subTest(body=body):
                self.assertValidationError(self.post(body))

    def test_wrong_types_name_each_field(self):
        r = self.post(json.dumps({"source_code": 5, "files": [], "env": {"A": 1}, "timeout": "x"}))
        detail = self.assertValidationError(r)
        flat = [x for loc in locs(detail) for x in loc]
        for field in ("source_code", "files", "env", "timeout"):
            with self.subTest(field=field):
                self.assertIn(field, flat, detail)
        self.assertTrue(any(loc[-2:] == ["env", "A"] for loc in locs(detail)), detail)

    def test_each_wrong_type_alone_names_its_field(self):
        cases = {"source_code": {"source_code": 5},
                 "files": {"source_code": "print(1)", "files": []},
                 "env": {"source_code": "print(1)", "env": {"A": 1}},
                 "timeout": {"source_code": "print(1)", "timeout": "x"}}
        for field, body in cases.items():
            with self.subTest(field=field):
                detail = self.assertValidationError(self.post(json.dumps(body)))
                self.assertTrue(all(field in loc for loc in locs(detail)), detail)

    def test_null_source_file_id_or_env_value_is_422(self):
        for body in ({"source_code": None}, {"source_code": "1", "files": {"/workspace/f": None}},
                     {"source_code": "1", "env": {"A": None}}):
            with self.subTest(body=body):
                self.assertValidationError(self.post(json.dumps(body)))

    def test_bad_timeouts_are_422(self):
        for t in (0, -1, True, [], {}):
            with self.subTest(timeout=t):
                detail = self.assertValidationError(self.post(json.dumps({"source_code": "1", "timeout": t})))
                self.assertTrue(any("timeout" in loc for loc in locs(detail)), detail)

    def test_include_subdirectories_takes_a_boolean_only(self):
        for v in (True, False):
            with self.subTest(include_subdirectories=v):
                r = self.post(json.dumps({"source_code": "print(1)", "include_subdirectories": v}))
                self.assertEqual(r.status, 200, r.body[:2000])
        for v in (1, "true", None, []):
            with self.subTest(include_subdirectories=v):
                body = {"source_code": "1", "include_subdirectories": v}
                detail = self.assertValidationError(self.post(json.dumps(body)))
                self.assertTrue(any("include_subdirectories" in loc for loc in locs(detail)), detail)

    def test_missing_source_code_is_422_type_missing(self):
        detail = self.assertValidationError(self.post(json.dumps({"files": {}})))
        self.assertTrue(any(d["type"] == "missing" and "source_code" in d["loc"] for d in detail), detail)

    def existing_object(self):
        """An id the store knows, so that only the path can make the request invalid."""
        out = self.run_code("open('o.txt', 'w').write('o')")
        return out["files"]["/workspace/o.txt"]

    def test_path_traversal_and_bad_paths_are_422(self):
        oid = self.existing_object()
        for path in ["/workspace/../etc/passwd", "/etc/passwd", "relative", "/workspace//x", "",
                     "/workspace/a/./b", "//workspace/x", "/workspace/x/..",
                     "/workspace/x/"]:
            with self.subTest(path=path):
                r = self.post(json.dumps({"source_code": "print(1)", "files": {path: oid}}))
                detail = self.assertValidationError(r)
                self.assertTrue(any("files" in loc for loc in locs(detail)), detail)

    def test_bad_object_ids_are_422(self):
        for oid in ["a/b", "x" * 256, "", "..", "a b", "\u00e9", "a.b"]:
            with self.subTest(oid=oid[:20]):
                r = self.post(json.dumps({"source_code": "print(1)", "files": {"/workspace/f": oid}}))
                detail = self.assertValidationError(r)
                self.assertTrue(any("files" in loc for loc in locs(detail)), detail)

    def test_unknown_object_id_is_422_naming_it(self):
        oid = "0" * 63 + "f"
        r = self.post(json.dumps({"source_code": "print(1)", "files": {"/workspace/f": oid}}))
        self.assertValidationError(r)
        self.assertIn(oid, r.body.decode("utf-8", "replace"))

    def test_loader_and_interpreter_env_are_422(self):
        for name in ["LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME"]:
            with self.subTest(name=name):
                r = self.post(json.dumps({"source_code": "print(1)", "env": {name: "/tmp/x"}}))
                detail = self.assertValidationError(r)
                self.assertTrue(any("env" in loc for loc in locs(detail)), detail)

    def test_bad_env_names_are_422(self):
        for name in ["", "A=B"]:
            with self.subTest(name=name):
                r = self.post(json.dumps({"source_code": "print(1)", "env": {name: "x"}}))
                self.assertValidationError(r)

    def test_env_names_outside_the_identifier_pattern_are_422(self):
        # [A-Za-z_][A-Za-z0-9_]* only, the rule common/validate.c holds for both binaries
        for name in [" X", "X ", "A-B", "1A", "A.B", "A B", "\u00e9", "A\tB"]:
            with self.subTest(name=name):
                r = self.post(json.dumps({"source_code": "print(1)", "env": {name: "x"}}))
                detail = self.assertValidationError(r)
                self.assertIn(["body", "env", name, "[key]"], locs(detail), detail)
                self.assertTrue(all(d["type"] == "value_error" for d in detail), detail)
        self.assertEqual(self.run_code("import os; print(os.environ['_a1'])", env={"_a1": "ok"})["stdout"], "ok\n")

    def ready_sandboxes(self):
        """The ids of the ready sandboxes, once there is at least one."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ids = {row[0] for row in db_rows("SELECT id FROM sandboxes WHERE state = 'ready'")}
            if ids:
                return ids
            time.sleep(0.1)
        self.fail("no sandbox became ready")

    def test_more_input_files_than_app_max_input_files_is_422_before_any_sandbox(self):
        # 1001 > APP_MAX_INPUT_FILES (1000 by default), every one of them valid
        oid = self.existing_object()
        files = {"/workspace/f%04d" % i: oid for i in range(1001)}
        executions = db_rows("SELECT count(*) FROM executions")
        ready = self.ready_sandboxes()
        t0 = time.monotonic()
        r = self.post(json.dumps({"source_code": "print(1)", "files": files}))
        took = time.monotonic() - t0
        detail = self.assertValidationError(r)
        self.assertEqual([(d["loc"], d["type"]) for d in detail], [(["body", "files"], "too_long")], detail)
        self.assertIn("1000", detail[0]["msg"])
        self.assertLess(took, 2, "a refused request took %.1f s" % took)
        # no execution started, no sandbox claimed: the ready ones are all still ready
        self.assertEqual(db_rows("SELECT count(*) FROM executions"), executions)
        still = {row[0] for row in db_rows("SELECT id FROM sandboxes WHERE state = 'ready'")}
        self.assertEqual(ready - still, set(), "a ready sandbox was claimed")
        # the limit itself is fine
        del files["/workspace/f1000"]
        out = self.run_code("import os; print(len(os.listdir('.')))", files=files)
        self.assertEqual(out["stdout"], "1000\n")

    def test_nul_in_env_value_is_422(self):
        r = self.post(json.dumps({"source_code": "print(1)", "env": {"A": "x\u0000y"}}))
        self.assertValidationError(r)

    def test_invalid_utf8_body_is_422(self):
        for body in [b'{"source_code": "print(1)\xff"}', b'{"source_code": "\xc3("}',
                     b'\xef\xbb\xbf{"source_code": "1"}x']:
            with self.subTest(body=body):
                self.assertValidationError(self.post(body))

    def test_nul_in_file_path_is_422(self):
        # json-c keeps the NUL inside the key; a C-string check would see "/workspace/a"
        oid = self.existing_object()
        r = self.post(json.dumps({"source_code": "print(1)", "files": {"/workspace/a\u0000b": oid}}))
        self.assertValidationError(r)

    def test_nul_in_env_name_is_422(self):
        r = self.post(json.dumps({"source_code": "print(1)", "env": {"A\u0000B": "x"}}))
        self.assertValidationError(r)

    def test_utf8_encoded_surrogate_in_body_is_422(self):
        # ED A0 80 is U+D800 encoded as UTF-8: not valid UTF-8 (RFC 3629)
        self.assertValidationError(self.post(b'{"source_code": "print(1) # \xed\xa0\x80"}'))

    def test_deep_nesting_is_422(self):
        for body in ["[" * 10000 + "]" * 10000,
                     '{"source_code": "1", "env": ' + "[" * 10000 + "]" * 10000 + "}",
                     '{"source_code": "1", "files": ' + '{"a":' * 10000 + "1" + "}" * 10000 + "}"]:
            with self.subTest(body=body[-40:]):
                self.assertValidationError(self.post(body))

    def test_huge_body_is_413_json_and_service_survives(self):
        size = 300 * 1000 * 1000
        conn = http.client.HTTPConnection(client.HOST, client.port(), timeout=60)
        status = body = None
        try:
            conn.putrequest("POST", "/v1/execute")
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(size))
            conn.endheaders()
            chunk = b'{"source_code": "' + b"x" * (1 << 20)
            sent = 0
            try:
                while sent < size:
                    piece = chunk[: min(len(chunk), size - sent)]
                    conn.send(piece)
                    sent += len(piece)
                    chunk = b"x" * (1 << 20)
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                r = conn.getresponse()
                status, body = r.status, r.read()
            except (http.client.HTTPException, ConnectionError, socket.timeout, OSError):
                pass
        finally:
            conn.close()
        if status is not None:
            self.assertEqual(status, 413, body[:500])
            json.loads(body.decode("utf-8"))
        self.assertHello()

    def test_huge_content_length_announced_is_413_json(self):
        # Only the headers: the answer must not wait for 300 MB that never come.
        r = client.raw_headers_only("/v1/execute", 300000000)
        self.assertEqual(r.status, 413, r.body[:300])
        json.loads(r.body.decode("utf-8"))

    def test_body_over_app_limit_is_413_json(self):
        # 17 MB > APP_MAX_REQUEST_BYTES (16 MiB default), sent completely
        r = self.post(json.dumps({"source_code": "#" + "x" * (17 * 1000 * 1000)}))
        self.assertJsonError(r, 413)

    def test_get_execute_is_405_json(self):
        self.assertJsonError(client.raw("GET", "/v1/execute"), 405)

    def test_405_names_allowed_method(self):
        r = client.raw("GET", "/v1/execute")
        self.assertIn("POST", r.headers.get("allow", ""))

    def test_other_methods_on_execute_are_405_json(self):
        for m in ("PUT", "DELETE", "PATCH"):
            with self.subTest(method=m):
                self.assertJsonError(client.raw(m, "/v1/execute", b"{}"), 405)

    def test_unknown_route_is_404_json(self):
        for path in ["/nope", "/v1/execute/x", "/v2/execute", "/", "/v1/files/../../etc/passwd"]:
            with self.subTest(path=path):
                self.assertJsonError(client.raw("GET", path), 404)

    def test_unknown_route_post_is_404_json(self):
        self.assertJsonError(client.raw("POST", "/nope", b'{"source_code": "print(1)"}'), 404)

    def test_wrong_content_type_still_json_answer(self):
        r = client.raw("POST", "/v1/execute", b"source_code=print(1)",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertTrue(r.json_ok, r.body[:500])
        self.assertGreaterEqual(r.status, 400)

    def test_zz_hello_world_still_works_after_bad_input(self):
        self.assertHello()
