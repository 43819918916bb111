// The Node server in front of SvelteKit's handler: it owns PORT, HOST and graceful shutdown,
// and serves the streaming upload route before the handler's 512K body limit applies.
import http from 'node:http';

const BRIDGE_KEY = Symbol.for('lifeboat.node-bridge');

// adapter-node reads these when build/handler.js is imported, so they are set first.
// Without ORIGIN it assumes https; derive the protocol from the socket instead, so the
// app works at whatever address the admin uses (and the header cannot be spoofed).
if (!process.env.ORIGIN) process.env.PROTOCOL_HEADER = 'x-lifeboat-protocol';

const port = Number(process.env.PORT || 2283);
const host = process.env.HOST || '0.0.0.0';

let handler;
try {
  ({ handler } = await import(process.env.LIFEBOAT_BUILD_ID ? `./build-${process.env.LIFEBOAT_BUILD_ID}/handler.js` : './build/handler.js'));
} catch (error) {
  console.error(`[lifeboat] Failed to start: ${error?.message ?? error}`);
  process.exit(1);
}
const bridge = globalThis[BRIDGE_KEY];

const server = http.createServer((req, res) => {
  if (!process.env.ORIGIN) req.headers['x-lifeboat-protocol'] = req.socket.encrypted ? 'https' : 'http';
  if (bridge?.handle(req, res)) return;
  handler(req, res, () => {
    res.statusCode = 404;
    res.end('Not found');
  });
});
// Uploads of large backups take long: no request timeout for them.
server.requestTimeout = 0;

server.listen(port, host, () => {
  console.log(`[lifeboat] Listening on http://${host === '0.0.0.0' ? 'localhost' : host}:${port}`);
});

let stopping = false;
async function shutdown(signal) {
  if (stopping) {
    console.log('[lifeboat] Second signal: exiting now');
    process.exit(1);
  }
  stopping = true;
  console.log(`[lifeboat] ${signal}: stopping (running jobs are aborted safely, the database is stopped)`);
  server.close();
  server.closeIdleConnections();
  const force = setTimeout(() => server.closeAllConnections(), 5000);
  force.unref();
  try {
    await bridge?.shutdown();
  } catch (error) {
    console.error('[lifeboat] Error during shutdown', error);
  }
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
