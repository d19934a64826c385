// The older client, bee-agent-framework 0.1.2 (upstream's era). Its
// callCodeInterpreter throws only on statuses above 400 and hands a 400's body
// back, which is how its CustomTool reads error_messages and stderr.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { PythonTool, callCodeInterpreter } from "bee-agent-framework/tools/python/python";
import { LocalPythonStorage } from "bee-agent-framework/tools/python/storage";
import { CustomTool, CustomToolCreateError, CustomToolExecuteError } from "bee-agent-framework/tools/custom";
import { SERVICE_URL, STORE, T, localDir, sha256 } from "./env.mjs";

const ADD = 'def add(a: int, b: int) -> int:\n    """Adds.\n\n    :param a: the first\n    :param b: the second\n    :return: the sum\n    """\n    return a + b\n';

test("bee-agent-framework PythonTool: a run and its output file", T, async () => {
  const dir = await localDir("bee-python");
  const storage = new LocalPythonStorage({ localWorkingDir: dir, interpreterWorkingDir: STORE });
  const tool = new PythonTool({ codeInterpreter: { url: SERVICE_URL }, storage });
  const out = await tool.run({ language: "python", code: 'print("hello world")\nopen("out.txt", "w").write("bee")\n' });
  assert.equal(out.exitCode, 0, out.stderr);
  assert.equal(out.stdout, "hello world\n");
  assert.deepEqual(out.outputFiles, [{ id: sha256("bee"), filename: "out.txt", pythonId: sha256("bee") }]);
  assert.equal(await readFile(path.join(dir, "out.txt"), "utf8"), "bee");
});

test("bee-agent-framework CustomTool: a value, and a tool that raises", T, async () => {
  const tool = await CustomTool.fromSourceCode({ url: SERVICE_URL }, ADD);
  assert.equal(tool.name, "add");
  assert.equal(tool.description, "Adds.\n\nReturns: int -- the sum");
  assert.equal((await tool.run({ a: 40, b: 2 })).getTextContent(), "42");

  const divide = await CustomTool.fromSourceCode({ url: SERVICE_URL }, "def divide(a: int, b: int) -> float:\n    return a / b\n");
  const error = await divide.run({ a: 1, b: 0 }).then(
    () => assert.fail("expected an error"),
    (e) => e,
  );
  const cause = [error, ...error.traverseErrors()].find((e) => e instanceof CustomToolExecuteError);
  assert.ok(cause, error.explain());
  assert.match(cause.message, /ZeroDivisionError: division by zero/);
});

test("bee-agent-framework: a 400 from execute-custom-tool is a body with stderr", T, async () => {
  const result = await callCodeInterpreter({
    url: `${SERVICE_URL}/v1/execute-custom-tool`,
    body: { tool_source_code: ADD, tool_input_json: JSON.stringify({ a: "x" }), env: {} },
  });
  assert.deepEqual(Object.keys(result), ["stderr"]);
  assert.match(result.stderr, /validation error/);
});

test("bee-agent-framework: error_messages of a 400 from parse-custom-tool", T, async () => {
  const error = await CustomTool.fromSourceCode({ url: SERVICE_URL }, "def f(*args: int) -> int:\n    return 0\n").then(
    () => assert.fail("expected a CustomToolCreateError"),
    (e) => e,
  );
  assert.ok(error instanceof CustomToolCreateError, String(error));
  assert.match(error.message, /The tool function must not have \*args/);
});
