import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Lifeboat } from '../app';

/**
 * server.js runs in front of the SvelteKit handler (uploads must not pass the 512K body
 * limit) and owns shutdown. It reaches this process's one app instance through this bridge,
 * so there is never a second copy of the services, locks or maintenance state.
 */
export interface NodeBridge {
  /** Handles the request and returns true, or returns false to let SvelteKit answer. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  shutdown(): Promise<void>;
}

type NodeRoute = (req: IncomingMessage, res: ServerResponse, app: Lifeboat) => void;

const routes = new Map<string, NodeRoute>();

/** Registers a route served before SvelteKit, keyed by "METHOD /path". */
export function registerNodeRoute(method: string, path: string, route: NodeRoute): void {
  routes.set(`${method} ${path}`, route);
}

export const BRIDGE_KEY = Symbol.for('lifeboat.node-bridge');

export function registerNodeBridge(app: Lifeboat): void {
  const bridge: NodeBridge = {
    handle(req, res) {
      const path = (req.url ?? '/').split('?')[0];
      const route = routes.get(`${req.method} ${path}`);
      if (!route) return false;
      route(req, res, app);
      return true;
    },
    shutdown: () => app.shutdown(),
  };
  (globalThis as Record<symbol, unknown>)[BRIDGE_KEY] = bridge;
}
