// beeai-framework's callCodeInterpreter, the HTTP call under PythonTool and
// CustomTool, with requests written by hand.
import assert from "node:assert/strict";
import { test } from "node:test";
import { callCodeInterpreter } from "beeai-framework/tools/python/python";
import { ToolError } from "beeai-framework/tools/base";
import { SERVICE_URL, T, sha256 } from "./env.mjs";

const execute = (body) => callCodeInterpreter({ url: `${SERVICE_URL}/v1/execute`, body });

const NESTED = 'import os\nos.makedirs("sub/dir")\nopen("sub/dir/x.txt", "w").write("deep")\nopen("top.txt", "w").write("top")\n';

test("execute: stdout, stderr, exit code, files", T, async () => {
  const result = await execute({
    source_code: 'import os, sys\nprint(os.environ["GREETING"])\nprint("to stderr", file=sys.stderr)\nopen("a.txt", "w").write("a")\nsys.exit(3)\n',
    env: { GREETING: "hi" },
  });
  assert.deepEqual(result, { stdout: "hi\n", stderr: "to stderr\n", exit_code: 3, files: { "/workspace/a.txt": sha256("a") } });
});

test("execute without include_subdirectories: only files directly under /workspace", T, async () => {
  const result = await execute({ source_code: NESTED });
  assert.equal(result.exit_code, 0, result.stderr);
  assert.deepEqual(result.files, { "/workspace/top.txt": sha256("top") });
});

test("execute with include_subdirectories: files in subdirectories too", T, async () => {
  const result = await execute({ source_code: NESTED, include_subdirectories: true });
  assert.equal(result.exit_code, 0, result.stderr);
  assert.deepEqual(result.files, { "/workspace/top.txt": sha256("top"), "/workspace/sub/dir/x.txt": sha256("deep") });
});

test("execute with an input file from an earlier run", T, async () => {
  const first = await execute({ source_code: 'open("n.txt", "w").write("20")' });
  const id = first.files["/workspace/n.txt"];
  assert.equal(id, sha256("20"));
  const second = await execute({ source_code: 'print(int(open("/workspace/in/n.txt").read()) + 22)', files: { "/workspace/in/n.txt": id } });
  assert.deepEqual(second, { stdout: "42\n", stderr: "", exit_code: 0, files: {} });
});

test("a request the service refuses becomes a ToolError naming the status", T, async () => {
  const error = await execute({ source_code: "print(1)", files: { "/etc/passwd": "x" } }).then(
    () => assert.fail("expected a ToolError"),
    (e) => e,
  );
  assert.ok(error instanceof ToolError, String(error));
  assert.match(error.message, /HTTP status code 422/);
  assert.match(error.errors[0].message, /"detail"/);
});
