// beeai-framework's PythonTool with LocalPythonStorage, the way bee-stack uses
// it: this process shares the service's storage folder (APP_FILE_STORAGE_PATH)
// through the group APP_FILE_STORAGE_GROUP names, as a user that is not root.
import assert from "node:assert/strict";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { PythonTool } from "beeai-framework/tools/python/python";
import { LocalPythonStorage } from "beeai-framework/tools/python/storage";
import { SERVICE_URL, STORE, T, localDir, sha256 } from "./env.mjs";

function pythonTool(localWorkingDir) {
  const storage = new LocalPythonStorage({ localWorkingDir, interpreterWorkingDir: STORE });
  return new PythonTool({ codeInterpreter: { url: SERVICE_URL }, storage });
}

// Runs input through the tool and checks the exit code; the message carries
// stderr, which says why when a run went wrong.
async function run(tool, input, exitCode = 0) {
  const out = await tool.run({ language: "python", ...input });
  assert.equal(out.exitCode, exitCode, `exit code ${out.exitCode}; stderr:\n${out.stderr}`);
  return out;
}

const names = (out) => out.outputFiles.map((f) => f.filename).sort();

test("hello world", T, async () => {
  const out = await run(pythonTool(await localDir("hello")), { code: 'print("hello world")' });
  assert.equal(out.stdout, "hello world\n");
  assert.equal(out.stderr, "");
  assert.deepEqual(out.outputFiles, []);
  assert.match(out.getTextContent(), /^The code executed successfully\./);
});

test("an exception: non-zero exit code, traceback in stderr", T, async () => {
  const code = 'def f():\n    raise ValueError("boom")\n\nf()\n';
  const out = await run(pythonTool(await localDir("exception")), { code }, 1);
  assert.match(out.stderr, /Traceback \(most recent call last\)/);
  assert.match(out.stderr, /ValueError: boom/);
  assert.match(out.getTextContent(), /The code exited with error code 1\./);
});

test("a local file as input: copied into the storage folder, read by the run", T, async () => {
  const dir = await localDir("input");
  const data = "a,b\n1,2\n3,4\n";
  await writeFile(path.join(dir, "data.csv"), data);
  const code = 'import csv\nrows = list(csv.DictReader(open("data.csv")))\nprint(sum(int(r["a"]) + int(r["b"]) for r in rows))\n';
  const out = await run(pythonTool(dir), { code, inputFiles: ["data.csv"] });
  assert.equal(out.stdout, "10\n");
  assert.deepEqual(out.outputFiles, [], "an unchanged input is not returned");
  assert.equal(await readFile(path.join(STORE, sha256(data)), "utf8"), data);
});

test("the storage folder and the service's objects are this process's group's", T, async () => {
  const dir = await localDir("group");
  const out = await run(pythonTool(dir), { code: 'open("g.txt", "w").write("group")' });
  assert.deepEqual(names(out), ["g.txt"]);
  const folder = await stat(STORE);
  assert.ok(process.getgroups().includes(folder.gid), `folder group ${folder.gid}, ours ${process.getgroups()}`);
  assert.equal(folder.mode & 0o2070, 0o2070, `folder mode ${(folder.mode & 0o7777).toString(8)}: setgid, group rwx`);
  const object = await stat(path.join(STORE, sha256("group")));
  assert.equal(object.gid, folder.gid);
  assert.equal(object.mode & 0o060, 0o060, `object mode ${(object.mode & 0o7777).toString(8)}: group rw`);
});

test("a file the run writes comes back to the local folder", T, async () => {
  const dir = await localDir("output");
  const out = await run(pythonTool(dir), { code: 'open("report.txt", "w").write("result: 42\\n")' });
  const id = sha256("result: 42\n");
  assert.deepEqual(out.outputFiles, [{ id, filename: "report.txt", pythonId: id }]);
  assert.equal(await readFile(path.join(dir, "report.txt"), "utf8"), "result: 42\n");
  assert.match(out.getTextContent(), new RegExp(`\\[report\\.txt\\]\\(urn:bee:file:${id}\\)`));
});

// LocalPythonStorage.upload copies numbers.txt to STORE/<its sha256>, where the
// service already wrote that object. Node's copyFile (libuv) opens it with
// O_TRUNC, then fchmods it to the source's mode, which only the file's owner
// may do: for an object that is not this user's it fails with EPERM, and
// libuv then unlinks the object (the folder is group-writable).
test("that file as the input of a second run (copied over the service's object)", T, async () => {
  const dir = await localDir("rerun");
  const tool = pythonTool(dir);
  await run(tool, { code: 'open("numbers.txt", "w").write("1 2 3\\n")' });
  const out = await run(tool, {
    code: 'n = [int(x) for x in open("numbers.txt").read().split()]\nprint(sum(n))\nopen("doubled.txt", "w").write(" ".join(str(2 * x) for x in n))\n',
    inputFiles: ["numbers.txt"],
  });
  assert.equal(out.stdout, "6\n");
  assert.deepEqual(names(out), ["doubled.txt"]);
  assert.equal(await readFile(path.join(dir, "doubled.txt"), "utf8"), "2 4 6");
  assert.equal(await readFile(path.join(STORE, sha256("1 2 3\n")), "utf8"), "1 2 3\n");
});

test("the same output name downloaded twice", T, async () => {
  const dir = await localDir("twice");
  const tool = pythonTool(dir);
  for (const [i, text] of ["first", "second, longer than the first", "third"].entries()) {
    // Once the folder holds a file the tool's schema requires inputFiles, here none.
    const inputFiles = i === 0 ? {} : { inputFiles: [] };
    const out = await run(tool, { code: `open("out.txt", "w").write(${JSON.stringify(text)})`, ...inputFiles });
    assert.deepEqual(out.outputFiles, [{ id: sha256(text), filename: "out.txt", pythonId: sha256(text) }]);
    assert.equal(await readFile(path.join(dir, "out.txt"), "utf8"), text);
  }
});

test("shell code", T, async () => {
  const out = await run(pythonTool(await localDir("shell")), { language: "shell", code: "echo hello from shell" });
  assert.equal(out.stdout, "hello from shell\n");
});

test("Python and shell lines mixed", T, async () => {
  const code = 'x = 2\necho @(x)\nprint(x * 21)\nname = $(echo shell).strip()\nprint("from " + name)\n';
  const out = await run(pythonTool(await localDir("mixed")), { code });
  assert.equal(out.stdout, "2\n42\nfrom shell\n");
});

test("files in subdirectories are not returned, the run still succeeds", T, async () => {
  const dir = await localDir("subdirs");
  const code = 'import os\nos.makedirs("sub/dir")\nopen("sub/dir/x.txt", "w").write("deep")\nopen("top.txt", "w").write("top")\n';
  const out = await run(pythonTool(dir), { code });
  assert.deepEqual(names(out), ["top.txt"]);
  assert.deepEqual(await readdir(dir), ["top.txt"]);
});
