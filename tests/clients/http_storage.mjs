// A PythonStorage for clients that do not share the service's storage folder
// (another machine, another container): files go up with POST /v1/files and
// come back with GET /v1/files/{object_id}. Use it with PythonTool as
//
//   const storage = new HttpPythonStorage({ url: "http://localhost:50081", localWorkingDir: "./files" });
//   const tool = new PythonTool({ codeInterpreter: { url: "http://localhost:50081" }, storage });
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { PythonStorage } from "beeai-framework/tools/python/storage";

export class HttpPythonStorage extends PythonStorage {
  constructor({ url, localWorkingDir }) {
    super();
    this.url = url.replace(/\/+$/, "");
    this.localWorkingDir = localWorkingDir;
  }

  // The files in the local folder. Their id is the SHA-256 of their content,
  // which is also the object id the service gives them.
  async list() {
    await mkdir(this.localWorkingDir, { recursive: true });
    const entries = await readdir(this.localWorkingDir, { withFileTypes: true });
    return Promise.all(
      entries
        .filter((entry) => entry.isFile())
        .map(async (entry) => {
          const data = await readFile(path.join(this.localWorkingDir, entry.name));
          const id = createHash("sha256").update(data).digest("hex");
          return { id, filename: entry.name, pythonId: id };
        }),
    );
  }

  // Sends the files a run needs to the service; pythonId is the object id it answered.
  async upload(files) {
    return Promise.all(
      files.map(async (file) => {
        const data = await readFile(path.join(this.localWorkingDir, file.filename));
        const response = await fetch(`${this.url}/v1/files`, { method: "POST", body: data });
        if (response.status !== 201) {
          throw new Error(`POST /v1/files answered ${response.status}: ${await response.text()}`);
        }
        const { object_id } = await response.json();
        return { id: file.id, filename: file.filename, pythonId: object_id };
      }),
    );
  }

  // Fetches the files a run created or changed into the local folder.
  async download(files) {
    return Promise.all(
      files.map(async (file) => {
        const response = await fetch(`${this.url}/v1/files/${encodeURIComponent(file.pythonId)}`);
        if (!response.ok) {
          throw new Error(`GET /v1/files/${file.pythonId} answered ${response.status}: ${await response.text()}`);
        }
        const target = path.join(this.localWorkingDir, file.filename);
        await mkdir(path.dirname(target), { recursive: true });
        await writeFile(target, Buffer.from(await response.arrayBuffer()));
        return { id: file.pythonId, filename: file.filename, pythonId: file.pythonId };
      }),
    );
  }

  createSnapshot() {
    return { url: this.url, localWorkingDir: this.localWorkingDir };
  }

  loadSnapshot(snapshot) {
    Object.assign(this, snapshot);
  }
}
