// One stream: the sidebar (names, views, connection, composer, gate, load, access) and a view.
import type { StreamStore } from "@streams/client/browser";
import { eventFeed } from "@streams/client/browser";
import { useStream } from "@streams/client/react";
import { useAccess } from "./access";
import { AccessPanel } from "./AccessPanel";
import { Composer } from "./Composer";
import { EditableName } from "./EditableName";
import { EventsView } from "./EventsView";
import { FeedView } from "./FeedView";
import { GatePanel } from "./GatePanel";
import { LoadTool } from "./LoadTool";
import { MirrorPanel } from "./MirrorPanel";
import { navigate, namespaceProblem, pathProblem, routeHref, VIEWS, type StreamRoute, type ViewName } from "./route";
import { StateView } from "./StateView";

const VIEW_LABELS: Record<ViewName, string> = { events: "Events", feed: "Feed", state: "State" };
export const VIEWER_PROCESSORS = [eventFeed()];

/** Options for the shared store of one stream (the same in every pane, so panes share it). */
export function useViewerStream(namespace: string, path: string) {
  const { apiToken } = useAccess();
  return useStream({ namespace, path, processors: VIEWER_PROCESSORS, ...(apiToken ? { token: apiToken } : {}) });
}

export function StreamPage({ route }: { route: StreamRoute }) {
  const { store, snapshot } = useViewerStream(route.namespace, route.path);
  const target = { namespace: route.namespace, path: route.path };
  return (
    <div className="layout">
      <aside className="sidebar" aria-label="Stream sidebar">
        <header className="names">
          <h1>streams viewer</h1>
          <EditableName testId="stream-namespace" label="namespace" value={route.namespace} problem={namespaceProblem} onSubmit={(namespace) => navigate({ ...route, namespace })} />
          <EditableName testId="stream-path" label="path" value={route.path} problem={pathProblem} onSubmit={(path) => navigate({ ...route, path })} />
        </header>
        <nav className="view-switcher" aria-label="Views" data-testid="view-switcher">
          {VIEWS.map((view) => {
            const to = { ...route, view };
            return (
              <a
                key={view}
                href={routeHref(to)}
                data-testid={`view-link-${view}`}
                aria-current={route.view === view ? "page" : undefined}
                onClick={(event) => {
                  event.preventDefault();
                  navigate(to);
                }}
              >
                {VIEW_LABELS[view]}
              </a>
            );
          })}
          <a href={routeHref({ kind: "split", namespace: route.namespace, left: route.path, right: route.path })} data-testid="view-link-split">
            Split
          </a>
        </nav>
        <MirrorPanel store={store} snapshot={snapshot} />
        <Composer store={store} />
        <GatePanel target={target} />
        <LoadTool store={store} />
        <AccessPanel />
      </aside>
      <main className="main">
        <View route={route} store={store} clearVersion={snapshot.clearVersion} />
      </main>
    </div>
  );
}

function View({ route, store, clearVersion }: { route: StreamRoute; store: StreamStore; clearVersion: number }) {
  switch (route.view) {
    case "events":
      return <EventsView store={store} clearVersion={clearVersion} />;
    case "feed":
      return <FeedView key={clearVersion} store={store} namespace={route.namespace} />;
    case "state":
      return <StateView target={{ namespace: route.namespace, path: route.path }} />;
  }
}
