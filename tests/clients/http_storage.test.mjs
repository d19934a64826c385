// PythonTool with HttpPythonStorage (http_storage.mjs): files travel over the
// service's /v1/files API, for a client that does not share its storage folder.
import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { PythonTool } from "beeai-framework/tools/python/python";
import { HttpPythonStorage } from "./http_storage.mjs";
import { SERVICE_URL, T, localDir, sha256 } from "./env.mjs";

test("an input file round trip over /v1/files", T, async () => {
  const dir = await localDir("http");
  const storage = new HttpPythonStorage({ url: SERVICE_URL, localWorkingDir: dir });
  const tool = new PythonTool({ codeInterpreter: { url: SERVICE_URL }, storage });
  const words = "the quick brown fox jumps over the lazy dog\n";
  await writeFile(path.join(dir, "words.txt"), words);

  const first = await tool.run({
    language: "python",
    code: 'w = open("words.txt").read().split()\nprint(len(w))\nopen("upper.txt", "w").write(" ".join(w).upper())\n',
    inputFiles: ["words.txt"],
  });
  assert.equal(first.exitCode, 0, first.stderr);
  assert.equal(first.stdout, "9\n");
  const upper = words.trim().toUpperCase();
  assert.deepEqual(first.outputFiles, [{ id: sha256(upper), filename: "upper.txt", pythonId: sha256(upper) }]);
  assert.equal(await readFile(path.join(dir, "upper.txt"), "utf8"), upper);

  // The file that came back goes up again as the input of the next run.
  const second = await tool.run({
    language: "python",
    code: 'print(open("upper.txt").read().count("THE"))\n',
    inputFiles: ["upper.txt"],
  });
  assert.equal(second.exitCode, 0, second.stderr);
  assert.equal(second.stdout, "2\n");
  assert.deepEqual(second.outputFiles, []);
  assert.deepEqual((await readdir(dir)).sort(), ["upper.txt", "words.txt"]);
});

test("HttpPythonStorage.upload answers the service's object id", T, async () => {
  const dir = await localDir("http-ids");
  const storage = new HttpPythonStorage({ url: SERVICE_URL, localWorkingDir: dir });
  const bytes = Buffer.from([0, 1, 2, 255, 254, 10, 13]);
  await writeFile(path.join(dir, "bytes.bin"), bytes);
  const [listed] = await storage.list();
  assert.deepEqual(listed, { id: sha256(bytes), filename: "bytes.bin", pythonId: sha256(bytes) });
  const [uploaded] = await storage.upload([{ id: listed.id, filename: "bytes.bin" }]);
  assert.equal(uploaded.pythonId, sha256(bytes));
  const response = await fetch(`${SERVICE_URL}/v1/files/${uploaded.pythonId}`);
  assert.equal(response.status, 200);
  assert.deepEqual(Buffer.from(await response.arrayBuffer()), bytes);
});
