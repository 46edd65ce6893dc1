/**
 * The routes of both servers, read from the contracts, matched the way express matches them
 * (with express 4's own path-to-regexp), so the oracle knows which route answered a request.
 */
import { OPENAPI_PATH, orchestratorContract, workerContract } from '@mpd/contract';
import { type AppRoute, type AppRouter, isAppRoute } from '@ts-rest/core';
import pathToRegexp from 'path-to-regexp';
import type { Server } from './servers.js';

export interface Schema {
  safeParse(value: unknown): { success: boolean; error?: { issues: unknown[] } };
}
export interface Route {
  server: Server;
  /** The route's keys in its contract (`workers.register`, `health.get`), or `openapi`. */
  name: string;
  method: string;
  path: string;
  pattern: RegExp;
  responses: Record<number, Schema>;
}

function routeOf(server: Server, name: string, route: Pick<AppRoute, 'method' | 'path' | 'responses'>): Route {
  return {
    server,
    name,
    method: route.method,
    path: route.path,
    // express 4's router options by default: case-insensitive, a trailing slash allowed.
    pattern: pathToRegexp(route.path, [], { sensitive: false, strict: false, end: true }),
    responses: route.responses as Record<number, Schema>,
  };
}

/** Every route of a contract, in the contract's own order, named by its keys. */
function routesOf(server: Server, router: AppRouter, keys: string[] = []): Route[] {
  return Object.entries(router).flatMap(([key, value]) =>
    isAppRoute(value) ? [routeOf(server, [...keys, key].join('.'), value)] : routesOf(server, value, [...keys, key]),
  );
}

/** Both servers also serve their OpenAPI document, a route outside the contracts. */
const openApi = (server: Server): Route =>
  routeOf(server, 'openapi', { method: 'GET', path: OPENAPI_PATH, responses: {} });

export const ROUTES: Route[] = [
  ...routesOf('orchestrator', orchestratorContract),
  openApi('orchestrator'),
  ...routesOf('worker', workerContract),
  openApi('worker'),
];

function matchRoute(server: Server, method: string, pathname: string): Route | undefined {
  const wanted = method === 'HEAD' ? 'GET' : method;
  return ROUTES.find((route) => route.server === server && route.method === wanted && route.pattern.test(pathname));
}

/** The route express runs for a request, if any. */
export function routeHit(request: { server: Server; method: string; path: string }): Route | undefined {
  return matchRoute(request.server, request.method, new URL(`http://x${request.path}`).pathname);
}

export function routeNamed(server: Server, name: string): Route {
  const route = ROUTES.find((candidate) => candidate.server === server && candidate.name === name);
  if (!route) throw new Error(`the ${server} has no route named ${name} (a route of its contract renamed?)`);
  return route;
}
