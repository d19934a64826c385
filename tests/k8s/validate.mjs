// Validates Kubernetes objects against the Kubernetes OpenAPI schemas
// (npm kubernetes-models). Usage: node validate.mjs FILE.json...
// Each file holds one object or an array of objects. Prints one line per
// object; exits 1 when any is invalid or of a kind it does not know.
import { readFileSync } from "node:fs";

let bad = 0;
for (const file of process.argv.slice(2)) {
  const data = JSON.parse(readFileSync(file, "utf8"));
  for (const obj of Array.isArray(data) ? data : [data]) {
    const name = `${obj.kind}/${obj.metadata?.name ?? "?"}`;
    const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : [null, obj.apiVersion];
    const path = group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
    let mod;
    try {
      mod = await import(path);
    } catch (e) {
      console.log(`FAIL ${name}: no schema for ${obj.apiVersion} (${e.message})`);
      bad++;
      continue;
    }
    const Model = mod[obj.kind];
    if (!Model) {
      console.log(`FAIL ${name}: no schema for kind ${obj.kind} in ${obj.apiVersion}`);
      bad++;
      continue;
    }
    try {
      new Model(obj).validate();
      console.log(`ok   ${name} (${obj.apiVersion})`);
    } catch (e) {
      console.log(`FAIL ${name}: ${e.message}`);
      bad++;
    }
  }
}
process.exit(bad ? 1 : 0);
