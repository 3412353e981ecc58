// The stream browser at `/streams?namespace=&prefix=&after=`: the namespace's directory (listStreams),
// a prefix filter, paging by the directory's cursor, and a link into each stream.
import { useEffect, useState } from "react";
import { errorText, listStreams, type DirectoryPage } from "./api";
import { EditableName } from "./EditableName";
import { counted } from "./events";
import { formatAgo } from "./format";
import { Link } from "./Link";
import { navigate, namespaceProblem, streamRoute, type DirectoryRoute } from "./route";

export const DIRECTORY_PAGE_SIZE = 50;
/** How often the listing is read again while the page is open (the directory is a few seconds fresh). */
const REFRESH_MS = 5000;

type Listing = { kind: "loading" } | { kind: "ok"; page: DirectoryPage } | { kind: "error"; message: string };

export function StreamsPage({ route }: { route: DirectoryRoute }) {
  const listing = useListing(route);
  const [draft, setDraft] = useState(route.prefix);
  useEffect(() => setDraft(route.prefix), [route.prefix]);
  const namespaceRefusal = namespaceProblem(route.namespace);
  return (
    <div className="app">
      <header className="topbar">
        <Link className="brand" to={{ ...route, prefix: "", after: null }}>
          streams
        </Link>
        <div className="identity" aria-label="Namespace">
          <EditableName
            testId="stream-namespace"
            label="namespace"
            value={route.namespace}
            problem={namespaceProblem}
            onSubmit={(namespace) => navigate({ kind: "streams", namespace, prefix: route.prefix, after: null })}
          />
          <span className="identity-sep">streams</span>
        </div>
      </header>
      <main className="directory">
        <form
          className="filter-bar"
          aria-label="Prefix filter"
          onSubmit={(event) => {
            event.preventDefault();
            navigate({ ...route, prefix: draft.trim(), after: null });
          }}
        >
          <label className="prefix-label">
            Path prefix
            <input data-testid="stream-list-prefix" value={draft} placeholder="/" spellCheck={false} onChange={(event) => setDraft(event.target.value)} />
          </label>
          <button type="submit" data-testid="stream-list-prefix-go">
            Filter
          </button>
          {listing.kind === "ok" && (
            <span className="count-text" data-testid="stream-list-count">
              {counted(listing.page.streams.length, "stream")}
              {route.after !== null || listing.page.next !== null ? " on this page" : ""}
            </span>
          )}
        </form>
        {namespaceRefusal !== null ? (
          <div className="notice error-state" role="alert" data-testid="stream-list-error">
            <p className="notice-message">The namespace {namespaceRefusal}.</p>
          </div>
        ) : (
          <ListingTable route={route} listing={listing} />
        )}
      </main>
    </div>
  );
}

function ListingTable({ route, listing }: { route: DirectoryRoute; listing: Listing }) {
  if (listing.kind === "loading") return <p className="hint notice">loading…</p>;
  if (listing.kind === "error") {
    return (
      <div className="notice error-state" role="alert" data-testid="stream-list-error">
        <p className="notice-message">{listing.message}</p>
      </div>
    );
  }
  const { streams, next } = listing.page;
  return (
    <>
      {streams.length === 0 ? (
        <p className="empty" data-testid="stream-list-empty">
          {route.prefix === "" ? "No streams in this namespace yet." : `No stream path starts with ${route.prefix}.`}
        </p>
      ) : (
        <table className="directory-table" data-testid="stream-list">
          <thead>
            <tr>
              <th>path</th>
              <th className="number">events</th>
              <th>last activity</th>
              <th>created</th>
            </tr>
          </thead>
          <tbody>
            {streams.map((stream) => (
              <tr key={stream.path} data-testid="stream-list-row" data-path={stream.path}>
                <td>
                  <Link to={streamRoute(route.namespace, stream.path)} testId="stream-list-open">
                    {stream.path}
                  </Link>
                </td>
                <td className="number" data-testid="stream-list-events">
                  {stream.maxOffset}
                </td>
                <td>
                  <time dateTime={stream.lastEventAt ?? undefined}>{formatAgo(stream.lastEventAt)}</time>
                </td>
                <td>
                  <time dateTime={stream.createdAt ?? undefined}>{stream.createdAt ? `${stream.createdAt.slice(0, 16).replace("T", " ")} UTC` : "—"}</time>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <nav className="pager" aria-label="Pages">
        {route.after !== null && (
          <Link to={{ ...route, after: null }} testId="stream-list-first">
            First page
          </Link>
        )}
        {next !== null && (
          <Link to={{ ...route, after: next }} testId="stream-list-next">
            Next page
          </Link>
        )}
      </nav>
    </>
  );
}

/** The directory page of `route`, read again every few seconds while shown; "loading" until this route's first answer. */
function useListing(route: DirectoryRoute): Listing {
  const { namespace, prefix, after } = route;
  const key = JSON.stringify([namespace, prefix, after]);
  const [answer, setAnswer] = useState<{ key: string; listing: Listing } | null>(null);
  useEffect(() => {
    if (namespaceProblem(namespace) !== null) return;
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = (): void => {
      listStreams({ namespace, prefix, after, limit: DIRECTORY_PAGE_SIZE }).then(
        (page) => {
          if (!live) return;
          setAnswer({ key, listing: { kind: "ok", page } });
          timer = setTimeout(read, REFRESH_MS);
        },
        (error: unknown) => live && setAnswer({ key, listing: { kind: "error", message: errorText(error) } }),
      );
    };
    read();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [key]);
  return answer?.key === key ? answer.listing : { kind: "loading" };
}
