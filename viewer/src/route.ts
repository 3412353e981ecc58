// The page state lives in the URL: `/?namespace=&path=&view=` and `/split?namespace=&left=&right=`.
import { useSyncExternalStore } from "react";

export const VIEWS = ["events", "feed", "state"] as const;
export type ViewName = (typeof VIEWS)[number];

export interface StreamRoute {
  kind: "stream";
  namespace: string;
  path: string;
  view: ViewName;
}

export interface SplitRoute {
  kind: "split";
  namespace: string;
  left: string;
  right: string;
}

export type Route = StreamRoute | SplitRoute;

export const DEFAULT_NAMESPACE = "default";
const NAMESPACE_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const SEGMENT_PATTERN = /^[A-Za-z0-9_.~-]+$/;
const MAX_PATH_BYTES = 1023;

/** Why `namespace` is not a valid stream namespace, or null when it is. */
export function namespaceProblem(namespace: string): string | null {
  return NAMESPACE_PATTERN.test(namespace) ? null : "must match ^[a-z0-9][a-z0-9_-]{0,62}$";
}

/** Why `path` is not a valid stream path, or null when it is (the server checks again). */
export function pathProblem(path: string): string | null {
  if (path === "/") return null;
  if (!path.startsWith("/")) return "must start with /";
  if (new TextEncoder().encode(path).length > MAX_PATH_BYTES) return `must be at most ${MAX_PATH_BYTES} bytes`;
  for (const segment of path.slice(1).split("/")) {
    if (segment === "") return "must not contain an empty segment or end with /";
    if (segment === "." || segment === "..") return "must not contain . or .. segments";
    if (!SEGMENT_PATTERN.test(segment)) return "segments use only A-Z a-z 0-9 _ . ~ -";
  }
  return null;
}

function param(search: URLSearchParams, name: string, fallback: string): string {
  const value = search.get(name)?.trim();
  return value ? value : fallback;
}

export function parseRoute(url: URL): Route {
  const search = url.searchParams;
  const namespace = param(search, "namespace", DEFAULT_NAMESPACE);
  if (url.pathname === "/split") {
    return { kind: "split", namespace, left: param(search, "left", "/"), right: param(search, "right", "/") };
  }
  const view = search.get("view");
  return {
    kind: "stream",
    namespace,
    path: param(search, "path", "/"),
    view: VIEWS.includes(view as ViewName) ? (view as ViewName) : "events",
  };
}

export function routeHref(route: Route): string {
  const search = new URLSearchParams();
  if (route.namespace !== DEFAULT_NAMESPACE) search.set("namespace", route.namespace);
  if (route.kind === "split") {
    search.set("left", route.left);
    search.set("right", route.right);
    return `/split?${search}`;
  }
  search.set("path", route.path);
  if (route.view !== "events") search.set("view", route.view);
  return `/?${search}`;
}

const listeners = new Set<() => void>();
let current: { href: string; route: Route } | null = null;

function snapshot(): Route {
  if (current?.href !== location.href) current = { href: location.href, route: parseRoute(new URL(location.href)) };
  return current.route;
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  window.addEventListener("popstate", listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener("popstate", listener);
  };
}

export function useRoute(): Route {
  return useSyncExternalStore(subscribe, snapshot);
}

export function navigate(route: Route): void {
  history.pushState(null, "", routeHref(route));
  for (const listener of listeners) listener();
}
