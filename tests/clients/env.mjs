// What harness.py tells the suites: the service's URL, its storage folder
// (APP_FILE_STORAGE_PATH, shared through APP_FILE_STORAGE_GROUP) and a folder
// of this user's for the clients' local files.
import { createHash } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import path from "node:path";

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the suites through tests/clients/harness.py`);
  }
  return value;
}

export const SERVICE_URL = required("CLIENTS_URL");
export const STORE = required("CLIENTS_STORE");
const WORK = required("CLIENTS_WORK");

// A per-test timeout: a run waits for a sandbox, then runs.
export const T = { timeout: 120_000 };

// A new empty local folder for one test.
export function localDir(name) {
  return mkdtemp(path.join(WORK, `${name}-`));
}

export function sha256(data) {
  return createHash("sha256").update(data).digest("hex");
}
