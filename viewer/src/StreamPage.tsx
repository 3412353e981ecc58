// One stream: the header (identity, live status, views), the sidebar (connection, composer, gate,
// load, children, access) and a view; or, before the stream can be shown, why not.
import type { StreamSnapshot, StreamStore } from "@streams/client/browser";
import { eventFeed } from "@streams/client/browser";
import { useStream } from "@streams/client/react";
import type { ReactNode } from "react";
import { useAccess } from "./access";
import { AccessPanel } from "./AccessPanel";
import type { StreamTarget } from "./api";
import { Composer } from "./Composer";
import { EditableName } from "./EditableName";
import { EventsView } from "./EventsView";
import { FeedView } from "./FeedView";
import { GatePanel } from "./GatePanel";
import { Link } from "./Link";
import { LoadTool } from "./LoadTool";
import { MirrorPanel } from "./MirrorPanel";
import { appendOverApi, useStreamPhase, type StreamPhase } from "./presence";
import { childrenRoute, DEFAULT_NAMESPACE, navigate, namespaceProblem, pathProblem, streamRoute, VIEWS, type DirectoryRoute, type StreamRoute, type ViewName } from "./route";
import { useRuntimeState } from "./runtime";
import { StateView } from "./StateView";

const VIEW_LABELS: Record<ViewName, string> = { events: "Events", feed: "Feed", state: "State" };
export const VIEWER_PROCESSORS = [eventFeed()];

/** Options for the shared store of one stream (the same in every pane, so panes share it). */
export function useViewerStream(namespace: string, path: string) {
  const { apiToken } = useAccess();
  return useStream({ namespace, path, processors: VIEWER_PROCESSORS, ...(apiToken ? { token: apiToken } : {}) });
}

/** The directory page one level up: the streams under the parent of `path`. */
function parentListing(namespace: string, path: string): DirectoryRoute {
  const parent = path.lastIndexOf("/") > 0 ? path.slice(0, path.lastIndexOf("/")) : "/";
  return childrenRoute(namespace, parent);
}

export function StreamPage({ route }: { route: StreamRoute }) {
  const target = { namespace: route.namespace, path: route.path };
  const phase = useStreamPhase(target);
  if (phase.kind === "live") return <LiveStream route={route} />;
  return (
    <Shell route={route} status={<PhaseBadge phase={phase} />} sidebar={phase.kind === "missing" ? <Composer append={appendOverApi(target)} /> : null}>
      <PhaseNotice route={route} phase={phase} />
    </Shell>
  );
}

function LiveStream({ route }: { route: StreamRoute }) {
  const { store, snapshot } = useViewerStream(route.namespace, route.path);
  const target = { namespace: route.namespace, path: route.path };
  return (
    <Shell
      route={route}
      status={
        <span className={`badge status-${snapshot.status}`} data-testid="header-status">
          {snapshot.status === "subscribed" ? "live" : snapshot.status}
        </span>
      }
      sidebar={
        <>
          <MirrorPanel store={store} snapshot={snapshot} />
          <Composer append={(event) => store.append(event)} />
          <GatePanel target={target} />
          <LoadTool store={store} />
          <ChildrenPanel target={target} />
        </>
      }
    >
      <View route={route} store={store} snapshot={snapshot} />
    </Shell>
  );
}

/** The page frame: a header with the stream's identity, live status and views; the sidebar; the view. */
function Shell({ route, status, sidebar, children }: { route: StreamRoute; status: ReactNode; sidebar: ReactNode; children: ReactNode }) {
  const valid = namespaceProblem(route.namespace) === null && pathProblem(route.path) === null;
  const listing = valid ? parentListing(route.namespace, route.path) : childrenRoute(DEFAULT_NAMESPACE, "/");
  return (
    <div className="app">
      <header className="topbar">
        <Link className="brand" to={listing} testId="stream-list-link" title="The streams next to this one">
          streams
        </Link>
        <div className="identity" aria-label="Stream">
          <EditableName testId="stream-namespace" label="namespace" value={route.namespace} problem={namespaceProblem} onSubmit={(namespace) => navigate({ ...route, namespace })} />
          <span className="identity-sep">/</span>
          <EditableName testId="stream-path" label="path" value={route.path} problem={pathProblem} onSubmit={(path) => navigate(streamRoute(route.namespace, path, route.view))} />
          {status}
        </div>
        <nav className="view-switcher" aria-label="Views" data-testid="view-switcher">
          {VIEWS.map((view) => (
            <Link key={view} to={{ ...route, view }} testId={`view-link-${view}`} current={route.view === view}>
              {VIEW_LABELS[view]}
            </Link>
          ))}
          <Link to={{ kind: "split", namespace: route.namespace, left: route.path, right: route.path }} testId="view-link-split">
            Split
          </Link>
        </nav>
      </header>
      <div className="layout">
        <aside className="sidebar" aria-label="Stream sidebar">
          {sidebar}
          <AccessPanel />
        </aside>
        <main className="main">{children}</main>
      </div>
    </div>
  );
}

function PhaseBadge({ phase }: { phase: Exclude<StreamPhase, { kind: "live" }> }) {
  const text = { invalid: "invalid name", refused: "refused", loading: "loading", missing: "no stream yet" }[phase.kind];
  return (
    <span className={`badge phase-${phase.kind}`} data-testid="header-status">
      {text}
    </span>
  );
}

/** Why the stream is not shown: a name the server refuses, a refused request, or nothing written yet. */
function PhaseNotice({ route, phase }: { route: StreamRoute; phase: Exclude<StreamPhase, { kind: "live" }> }) {
  const browse = (
    <Link to={phase.kind === "invalid" ? childrenRoute(DEFAULT_NAMESPACE, "/") : parentListing(route.namespace, route.path)} testId="notice-browse">
      Browse the streams
    </Link>
  );
  switch (phase.kind) {
    case "invalid":
      return (
        <div className="notice error-state" role="alert" data-testid="stream-invalid">
          <h2>This is not a stream name</h2>
          <p className="notice-message">{phase.message}</p>
          <p className="notice-detail">
            Asked for <code className="clipped">{route.path}</code> in namespace <code className="clipped">{route.namespace}</code>. Edit
            the name above, or {browse}.
          </p>
        </div>
      );
    case "refused":
      return (
        <div className="notice error-state" role="alert" data-testid="stream-refused">
          <h2>The API refused this stream</h2>
          <p className="notice-message">{phase.message}</p>
        </div>
      );
    case "loading":
      return (
        <div className="notice" data-testid="stream-loading">
          <p className="hint">Looking up {route.path}…</p>
          {phase.retrying && <p className="error">{phase.retrying} (retrying)</p>}
        </div>
      );
    case "missing":
      return (
        <div className="notice empty-state" data-testid="stream-empty">
          <h2>No stream here yet</h2>
          <p>
            Nothing has been written to <code className="clipped">{route.path}</code> in namespace <code>{route.namespace}</code>. The page
            watches it and shows the stream as soon as an event is appended (the composer on the left appends one), or {browse}.
          </p>
        </div>
      );
  }
}

function View({ route, store, snapshot }: { route: StreamRoute; store: StreamStore; snapshot: StreamSnapshot }) {
  const target = { namespace: route.namespace, path: route.path };
  switch (route.view) {
    case "events":
      return (
        <EventsView
          store={store}
          clearVersion={snapshot.clearVersion}
          filter={{ type: route.type, hidePresence: !route.presence }}
          onFilterChange={(filter) => navigate({ ...route, type: filter.type, presence: !filter.hidePresence })}
        />
      );
    case "feed":
      return (
        <FeedView
          key={snapshot.clearVersion}
          store={store}
          namespace={route.namespace}
          hidePresence={!route.presence}
          onPresenceChange={(hidePresence) => navigate({ ...route, presence: !hidePresence })}
        />
      );
    case "state":
      return <StateView target={target} at={route.at} onAtChange={(at) => navigate({ ...route, at })} />;
  }
}

/** The stream's children (the state keeps up to 100; the directory lists them all). */
function ChildrenPanel({ target }: { target: StreamTarget }) {
  const { data } = useRuntimeState(target);
  const state = data?.coreProcessorState;
  if (!state) return null;
  const shown = state.childPaths;
  const total = typeof state.childCount === "number" ? state.childCount : shown.length;
  return (
    <section className="panel" aria-label="Child streams" data-testid="stream-children">
      <h2>Children ({total})</h2>
      {shown.length === 0 ? (
        <p className="hint">No child streams.</p>
      ) : (
        <ul className="children">
          {shown.map((child) => (
            <li key={child}>
              <Link to={streamRoute(target.namespace, child)} testId="stream-child-link">
                {child}
              </Link>
            </li>
          ))}
        </ul>
      )}
      <Link to={childrenRoute(target.namespace, target.path)} testId="stream-children-directory">
        {total > shown.length ? `All ${total} in the directory` : "In the directory"}
      </Link>
    </section>
  );
}
