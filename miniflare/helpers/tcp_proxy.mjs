// A loopback TCP proxy in front of the Worker's port, to break connections the way networks do:
//   cut()     destroys every open connection (the client sees its socket closed by the far end)
//   freeze()  keeps every open connection but stops forwarding (a dead socket that never closes)
//   refuse(b) while true, new connections are closed at once (the server looks down)
import net from "node:net";

export async function startProxy(targetPort, { host = "127.0.0.1" } = {}) {
  const pairs = new Set();
  let refusing = false;
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted += 1;
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, host);
    const pair = { client, upstream, frozen: false };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (d) => pair.frozen || upstream.write(d));
    upstream.on("data", (d) => pair.frozen || client.write(d));
    for (const s of [client, upstream]) {
      s.on("error", end);
      s.on("close", () => pair.frozen || end());
    }
  });
  await new Promise((resolve) => server.listen(0, host, resolve));
  const { port } = server.address();
  return {
    port,
    url: `http://${host}:${port}/`,
    /** Connections accepted so far. */
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    cut() {
      const n = pairs.size;
      for (const p of [...pairs]) {
        pairs.delete(p);
        p.client.destroy();
        p.upstream.destroy();
      }
      return n;
    },
    freeze() {
      for (const p of pairs) p.frozen = true;
      return pairs.size;
    },
    refuse(on) {
      refusing = on;
    },
    async close() {
      for (const p of [...pairs]) {
        p.client.destroy();
        p.upstream.destroy();
      }
      pairs.clear();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A free loopback port (for a Miniflare that must come back on the same one). */
export async function freePort(host = "127.0.0.1") {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, host, resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}
