"""Point 1: the basic round trip and the health_check CLI."""
import os
import socket
import subprocess
import time

import client
from support import BUILD, HELLO, E2E


class P1Basics(E2E):
    def test_hello_world_exact_json(self):
        r = client.execute("print('hello world')")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json, HELLO)

    def test_hello_world_exact_raw_bytes(self):
        r = client.execute("print('hello world')")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.body, b'{"stdout":"hello world\\n","stderr":"","exit_code":0,"files":{}}')

    def test_hello_world_content_type_and_execution_id(self):
        r = client.execute("print('hello world')")
        self.assertEqual(r.status, 200, r.body)
        self.assertIn("application/json", r.headers.get("content-type", ""))
        self.assertRegex(r.headers.get("x-execution-id", ""), r"^[0-9A-Za-z-]{8,}$")

    def test_execution_ids_differ_between_runs(self):
        a = client.execute("print(1)")
        b = client.execute("print(1)")
        self.assertEqual((a.status, b.status), (200, 200))
        self.assertNotEqual(a.headers.get("x-execution-id"), b.headers.get("x-execution-id"))

    def test_healthz_answers_200_json(self):
        r = client.raw("GET", "/healthz")
        self.assertEqual(r.status, 200, r.body)
        self.assertIsInstance(r.json, dict, r.body)

    def test_readyz_answers_json_and_becomes_200(self):
        # 503 is right while every warm sandbox is taken or starting; it must
        # turn 200 once the pool has refilled (bounded by the claim timeout).
        deadline = time.monotonic() + 30
        while True:
            r = client.raw("GET", "/readyz")
            self.assertIn(r.status, (200, 503), r.body)
            self.assertIsInstance(r.json, dict, r.body)
            if r.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(r.status, 200, r.body)


class P1HealthCheck(E2E):
    def _run(self, port):
        env = dict(os.environ, APP_HTTP_PORT=str(port))
        return subprocess.run([os.path.join(BUILD, "health_check")], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)

    def test_health_check_binary_exits_0_against_the_service(self):
        p = self._run(client.port())
        self.assertEqual(p.returncode, 0, (p.stdout, p.stderr))

    def test_health_check_against_closed_port_fails_with_one_line(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        try:
            p = self._run(port)
        finally:
            s.close()
        self.assertNotEqual(p.returncode, 0, (p.stdout, p.stderr))
        text = (p.stdout + p.stderr).decode("utf-8", "replace")
        lines = [l for l in text.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "expected one line, got %r" % text)
