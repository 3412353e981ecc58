// The page state lives in the URL: `/?namespace=&path=&view=&type=&presence=&at=`,
// `/split?namespace=&left=&right=` and `/streams?namespace=&prefix=&after=` (docs/viewer.md#routes).
import { useSyncExternalStore } from "react";

export const VIEWS = ["events", "feed", "state"] as const;
export type ViewName = (typeof VIEWS)[number];

export interface StreamRoute {
  kind: "stream";
  namespace: string;
  path: string;
  view: ViewName;
  /** The events view's type filter, or null for every type. */
  type: string | null;
  /** Whether the stream's own presence events are listed (hidden by default). */
  presence: boolean;
  /** The state view's offset ("the state right after this event"), or null for the current state. */
  at: number | null;
}

export interface SplitRoute {
  kind: "split";
  namespace: string;
  left: string;
  right: string;
}

export interface DirectoryRoute {
  kind: "streams";
  namespace: string;
  prefix: string;
  /** The directory's paging cursor (`next` of the page before), or null for the first page. */
  after: string | null;
}

export type Route = StreamRoute | SplitRoute | DirectoryRoute;

export const DEFAULT_NAMESPACE = "default";
const NAMESPACE_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const SEGMENT_PATTERN = /^[A-Za-z0-9_.~-]+$/;
const MAX_PATH_BYTES = 1023;

/** Why `namespace` is not a valid stream namespace, or null when it is. */
export function namespaceProblem(namespace: string): string | null {
  return NAMESPACE_PATTERN.test(namespace) ? null : "must match ^[a-z0-9][a-z0-9_-]{0,62}$";
}

/** Why `path` is not a valid stream path, or null when it is (the server's rules, docs/protocol.md). */
export function pathProblem(path: string): string | null {
  if (path === "") return "must not be empty";
  if (new TextEncoder().encode(path).length > MAX_PATH_BYTES) return `must be at most ${MAX_PATH_BYTES} bytes`;
  if (path === "/") return null;
  if (!path.startsWith("/")) return "must start with /";
  for (const segment of path.slice(1).split("/")) {
    if (segment === "") return "must not contain an empty segment or end with /";
    if (segment === "." || segment === "..") return "must not contain . or .. segments";
    if (!SEGMENT_PATTERN.test(segment)) return "segments use only A-Z a-z 0-9 _ . ~ -";
  }
  return null;
}

/** A query value as given (an empty one counts as absent). Names are not trimmed: the server checks them as they are. */
function param(search: URLSearchParams, name: string, fallback: string): string {
  const value = search.get(name);
  return value ? value : fallback;
}

function offsetParam(search: URLSearchParams, name: string): number | null {
  const value = search.get(name);
  if (value === null || !/^\d{1,15}$/.test(value)) return null;
  return Number(value);
}

export function parseRoute(url: URL): Route {
  const search = url.searchParams;
  const namespace = param(search, "namespace", DEFAULT_NAMESPACE);
  if (url.pathname === "/split") {
    return { kind: "split", namespace, left: param(search, "left", "/"), right: param(search, "right", "/") };
  }
  if (url.pathname === "/streams") {
    return { kind: "streams", namespace, prefix: search.get("prefix") ?? "", after: search.get("after") || null };
  }
  const view = search.get("view");
  return {
    kind: "stream",
    namespace,
    path: param(search, "path", "/"),
    view: VIEWS.includes(view as ViewName) ? (view as ViewName) : "events",
    type: search.get("type") || null,
    presence: search.get("presence") === "shown",
    at: offsetParam(search, "at"),
  };
}

export function routeHref(route: Route): string {
  const search = new URLSearchParams();
  if (route.namespace !== DEFAULT_NAMESPACE) search.set("namespace", route.namespace);
  switch (route.kind) {
    case "split":
      search.set("left", route.left);
      search.set("right", route.right);
      return `/split?${search}`;
    case "streams":
      if (route.prefix !== "") search.set("prefix", route.prefix);
      if (route.after !== null) search.set("after", route.after);
      return `/streams${search.size > 0 ? `?${search}` : ""}`;
    case "stream":
      search.set("path", route.path);
      if (route.view !== "events") search.set("view", route.view);
      if (route.type !== null) search.set("type", route.type);
      if (route.presence) search.set("presence", "shown");
      if (route.at !== null && route.view === "state") search.set("at", String(route.at));
      return `/?${search}`;
  }
}

/** The stream page of a path with every other setting at its default. */
export function streamRoute(namespace: string, path: string, view: ViewName = "events"): StreamRoute {
  return { kind: "stream", namespace, path, view, type: null, presence: false, at: null };
}

/** The directory listing a stream's children: the prefix `<path>/` (`/` for the root). */
export function childrenRoute(namespace: string, path: string): DirectoryRoute {
  return { kind: "streams", namespace, prefix: path === "/" ? "/" : `${path}/`, after: null };
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

/** Go to `route` (a new history entry, so the back button undoes it). */
export function navigate(route: Route): void {
  history.pushState(null, "", routeHref(route));
  for (const listener of listeners) listener();
}
