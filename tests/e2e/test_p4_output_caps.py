"""Point 4, output: with a large APP_MAX_OUTPUT_BYTES the caps agree end to end.
Both streams over the cap, made of bytes JSON escapes six-fold (\\u0001), reach
the client truncated with their marker line: a 200, never a 500 because a
reader between the executor and the client accepts less than the cap allows."""
import client
from instance import Instance
from support import E2E

MiB = 1 << 20
CAP = 8 * MiB

FLOOD = '''
import sys
chunk = b"\\x01" * (1 << 20)
for _ in range(%d):
    sys.stdout.buffer.write(chunk)
    sys.stderr.buffer.write(chunk)
sys.stdout.flush()
sys.stderr.flush()
'''


class P4OutputCaps(E2E):
    def test_streams_over_a_large_cap_are_truncated_not_a_500(self):
        over = 9  # MiB per stream, more than CAP
        inst = Instance({"APP_MAX_OUTPUT_BYTES": str(CAP), "APP_SANDBOX_MEMORY_MB": "1024"})
        try:
            inst.start()
            with inst.current():
                r = client.execute(FLOOD % over, timeout=120)
                self.assertEqual(r.status, 200, r.body[:2000])
                self.assertGreater(len(r.body), 2 * 6 * CAP, "the answer is not the escaped streams")
                dropped = over * MiB - CAP
                marker = "\n[output truncated: %d bytes dropped]\n" % dropped
                for name in ("stdout", "stderr"):
                    text = r.json[name]
                    with self.subTest(stream=name):
                        self.assertTrue(text.endswith(marker), repr(text[-200:]))
                        self.assertEqual(len(text), CAP + len(marker))
                        self.assertEqual(text[:CAP], "\x01" * CAP)
                self.assertEqual(r.json["exit_code"], 0, r.json["stderr"][-500:])
                self.assertHello()
        finally:
            ok, lines = inst.stop()
            inst.remove()
        self.assertTrue(ok, "\n".join(lines))
