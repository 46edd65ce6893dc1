// The container healthcheck of the mpd image (the Dockerfile's HEALTHCHECK, compose.yaml's
// `healthcheck`): exits 0 when the server in this container, orchestrator or worker, answers
// GET /api/health with 200, and 1 otherwise. Plain JavaScript and node's own fetch, so the slim
// image needs no curl and the check starts no TypeScript loader.
//
// It asks 127.0.0.1 on MPD_PORT (the image sets 8080 for both commands), over http: with
// --tls-cert, or with --host set to one address other than 127.0.0.1, override the healthcheck.
const port = process.env.MPD_PORT ?? '8080';
const url = `http://127.0.0.1:${port}/api/health`;
try {
  // Within the healthcheck's own timeout (compose's 3 s), so a hung server reads as unhealthy here.
  const response = await fetch(url, { signal: AbortSignal.timeout(2_500) });
  if (!response.ok) {
    console.error(`${url} answered ${response.status}`);
    process.exit(1);
  }
} catch (error) {
  console.error(`${url}: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
