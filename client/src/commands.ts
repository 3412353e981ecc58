// The `streams` CLI: append, read, follow and inspect streams from a shell. JSON lines on stdout;
// errors on stderr as `streams: <code>: <message>`, with an exit status per error kind.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { createStreamsClient, DEFAULT_NAMESPACE, type StreamsClient } from "./client.js";
import { StreamError, type ErrorCode } from "./errors.js";
import type { WebSocketConstructor } from "./link.js";
import { mintToken, TOKEN_OPS, type TokenOp } from "./token.js";
import type { EventInput } from "./types.js";

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values = Record<string, string | boolean | undefined>;

export interface CommandContext {
  positionals: string[];
  values: Values;
  /** A client for --url/--namespace/--token (or STREAMS_URL / STREAMS_TOKEN). */
  client(): Promise<StreamsClient>;
  out(line: string): void;
  err(line: string): void;
  signal: AbortSignal;
}

export interface Command {
  usage: string;
  options: Options;
  run(ctx: CommandContext): Promise<void>;
}

/** Exit statuses; the error code itself is always on stderr. */
export const EXIT = {
  ok: 0,
  internal: 1,
  usage: 2,
  network: 3,
  unauthorized: 4,
  notFound: 5,
  invalid: 6,
  conflict: 7,
  paused: 8,
} as const;

export function exitStatus(code: ErrorCode): number {
  switch (code) {
    case "network":
    case "timeout":
      return EXIT.network;
    case "unauthorized":
    case "forbidden":
    case "subscriber_not_allowed":
      return EXIT.unauthorized;
    case "not_found":
    case "method_not_allowed":
    case "trimmed":
      return EXIT.notFound;
    case "invalid_request":
    case "invalid_event":
    case "invalid_path":
    case "invalid_namespace":
    case "event_too_large":
    case "batch_too_large":
      return EXIT.invalid;
    case "offset_mismatch":
    case "idempotency_conflict":
    case "subscription_replaced":
    case "subscription_key_in_use":
      return EXIT.conflict;
    case "stream_paused":
      return EXIT.paused;
    default:
      return EXIT.internal;
  }
}

/** A bad command line: exit 2 with the command's usage. */
export class UsageError extends Error {}

const GLOBAL_OPTIONS: Options = {
  url: { type: "string" },
  namespace: { type: "string" },
  token: { type: "string" },
  help: { type: "boolean", short: "h" },
};

function integer(values: Values, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  if (typeof raw !== "string" || !/^\d+$/.test(raw)) throw new UsageError(`--${name} must be a non-negative integer`);
  return Number(raw);
}

function onePath(ctx: CommandContext, extra = 0): string {
  const path = ctx.positionals[0];
  if (path === undefined || ctx.positionals.length > 1 + extra) throw new UsageError("expected one stream path");
  return path;
}

function parseEvent(text: string, where: string): EventInput {
  try {
    return JSON.parse(text) as EventInput;
  } catch (e) {
    throw new UsageError(`${where} is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export const COMMANDS: Record<string, Command> = {
  append: {
    usage: "append <path> [<event-json>] [--stream-path <p>]   (no event: one JSON event per stdin line, one batch)",
    options: { "stream-path": { type: "string" } },
    async run(ctx) {
      const path = onePath(ctx, 1);
      const arg = ctx.positionals[1];
      const events =
        arg !== undefined
          ? [parseEvent(arg, "the event")]
          : (await readStdin())
              .split("\n")
              .filter((line) => line.trim() !== "")
              .map((line, i) => parseEvent(line, `stdin line ${i + 1}`));
      if (events.length === 0) throw new UsageError("no event given");
      const streamPath = ctx.values["stream-path"];
      const options = typeof streamPath === "string" ? { streamPath } : {};
      const client = await ctx.client();
      const committed = events.length === 1 ? [await client.append(path, events[0]!, options)] : await client.appendBatch(path, events, options);
      for (const event of committed) ctx.out(JSON.stringify(event));
    },
  },
  get: {
    usage: "get <path> [--offset <n> | --key <idempotencyKey> | --from <n> --before <n> | --since <10m|ISO time> | --last <n>]",
    options: { offset: { type: "string" }, key: { type: "string" }, from: { type: "string" }, before: { type: "string" }, since: { type: "string" }, last: { type: "string" } },
    async run(ctx) {
      const path = onePath(ctx);
      const client = await ctx.client();
      const offset = integer(ctx.values, "offset");
      const key = ctx.values.key;
      if (offset !== undefined || key !== undefined) {
        if (offset !== undefined && key !== undefined) throw new UsageError("give --offset or --key, not both");
        const event = await client.getEvent(path, offset !== undefined ? { offset } : { idempotencyKey: String(key) });
        if (event === undefined) throw new StreamError("not_found", `no event with idempotency key ${JSON.stringify(key)}`);
        ctx.out(JSON.stringify(event));
        return;
      }
      const last = integer(ctx.values, "last");
      if (last !== undefined) {
        for (const event of await client.getEvents(path, { last })) ctx.out(JSON.stringify(event));
        return;
      }
      if (typeof ctx.values.since === "string") {
        // The first page by time, then onward by offset.
        const first = await client.getEvents(path, { sinceTime: sinceTime(ctx.values.since), limit: 1000 });
        for (const event of first) ctx.out(JSON.stringify(event));
        const after = first.at(-1)?.offset;
        if (after !== undefined) for await (const event of client.events(path, { afterOffset: after })) ctx.out(JSON.stringify(event));
        return;
      }
      const range: { afterOffset?: number; beforeOffset?: number } = {};
      const from = integer(ctx.values, "from");
      const before = integer(ctx.values, "before");
      if (from !== undefined) range.afterOffset = from;
      if (before !== undefined) range.beforeOffset = before;
      for await (const event of client.events(path, range)) ctx.out(JSON.stringify(event));
    },
  },
  tail: {
    usage: "tail <path> [--from <n>] [--types <a,b>] [--sse]   (follows until interrupted; default: only new events)",
    options: { from: { type: "string" }, types: { type: "string" }, sse: { type: "boolean" } },
    async run(ctx) {
      const path = onePath(ctx);
      const client = await ctx.client();
      const from = integer(ctx.values, "from");
      const types = typeof ctx.values.types === "string" ? ctx.values.types.split(",").map((t) => t.trim()).filter(Boolean) : undefined;
      // Server-Sent Events when asked, or when there is no WebSocket to use (Node 20 without `ws`).
      const sse = ctx.values.sse === true || (await webSocketConstructor()) === undefined;
      const subscription = client.subscribe(path, {
        transport: sse ? "sse" : "websocket",
        ...(from !== undefined ? { afterOffset: from } : {}),
        ...(types ? { eventTypes: types } : {}),
        signal: ctx.signal,
      });
      for await (const item of subscription) {
        if (item.type === "reset") {
          ctx.err(`streams: the stream was reset (streamId ${item.streamId}); following its new life from offset 1`);
          continue;
        }
        for (const event of item.events) ctx.out(JSON.stringify(event));
      }
    },
  },
  state: {
    usage: "state <path> [--at <offset>]   (without --at: runtimeState; with it: the core state right after that offset)",
    options: { at: { type: "string" } },
    async run(ctx) {
      const path = onePath(ctx);
      const at = integer(ctx.values, "at");
      const client = await ctx.client();
      ctx.out(JSON.stringify(at === undefined ? await client.runtimeState(path) : await client.getState(path, { atOffset: at })));
    },
  },
  ls: {
    usage: "ls [prefix] [--limit <n>]   (the directory: one JSON line per stream, sorted by path)",
    options: { limit: { type: "string" } },
    async run(ctx) {
      if (ctx.positionals.length > 1) throw new UsageError("expected at most one prefix");
      const limit = integer(ctx.values, "limit");
      const client = await ctx.client();
      const pages = client.listStreams({ ...(ctx.positionals[0] ? { prefix: ctx.positionals[0] } : {}), ...(limit ? { limit } : {}) });
      for await (const page of pages) for (const stream of page.streams) ctx.out(JSON.stringify(stream));
    },
  },
  token: {
    usage: "token <path-scope>... --ops read,append,configure --ttl <seconds> [--sub <who>] [--secret-env <VAR>]   (signs with $STREAMS_JWT_SECRET; prints the token)",
    options: { ops: { type: "string" }, ttl: { type: "string" }, sub: { type: "string" }, "secret-env": { type: "string" } },
    async run(ctx) {
      if (ctx.positionals.length === 0) throw new UsageError("expected at least one path scope, e.g. /agents/a1 or /agents/a1/**");
      const ops = typeof ctx.values.ops === "string" ? ctx.values.ops.split(",").map((op) => op.trim()) : [];
      if (ops.length === 0 || ops.some((op) => !TOKEN_OPS.includes(op as TokenOp))) throw new UsageError("--ops must list read, append and/or configure");
      const ttlSeconds = integer(ctx.values, "ttl");
      if (!ttlSeconds) throw new UsageError("--ttl must be a positive number of seconds");
      // The secret comes from the environment, never the command line (which other users can see).
      const secretEnv = typeof ctx.values["secret-env"] === "string" ? ctx.values["secret-env"] : "STREAMS_JWT_SECRET";
      const secret = process.env[secretEnv];
      if (!secret) throw new UsageError(`$${secretEnv} is not set`);
      const ns = typeof ctx.values.namespace === "string" ? ctx.values.namespace : DEFAULT_NAMESPACE;
      const sub = typeof ctx.values.sub === "string" ? { sub: ctx.values.sub } : {};
      ctx.out(await mintToken({ secret, ns, paths: ctx.positionals, ops: ops as TokenOp[], ttlSeconds, ...sub }));
    },
  },
};

/** `--since`: an ISO time, or an age such as `90s`, `10m`, `2h`, `1d` before now. */
function sinceTime(text: string): string {
  const age = /^(\d+)([smhd])$/.exec(text.trim());
  if (!age) return text;
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2] as "s" | "m" | "h" | "d"];
  return new Date(Date.now() - Number(age[1]) * unit).toISOString();
}

function help(): string {
  return [
    "usage: streams [--url <base>] [--namespace <ns>] [--token <t>] <command> ...",
    "",
    ...Object.entries(COMMANDS).map(([, c]) => `  streams ${c.usage}`),
    "",
    "--url defaults to $STREAMS_URL, --token to $STREAMS_TOKEN, --namespace to \"default\".",
    "Output: JSON lines on stdout. Errors: `streams: <code>: <message>` on stderr.",
    `Exit status: ${Object.entries(EXIT).map(([k, v]) => `${v} ${k}`).join(", ")}.`,
  ].join("\n");
}

/** The WebSocket constructor: the platform's, else the `ws` package when it is installed. */
async function webSocketConstructor(): Promise<WebSocketConstructor | undefined> {
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (global) return global;
  try {
    const moduleName = "ws";
    const ws = (await import(moduleName)) as { default: WebSocketConstructor };
    return ws.default;
  } catch {
    return undefined;
  }
}

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

const STDIO: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/** Runs one command line; resolves to the exit status. */
export async function main(argv: string[], io: CliIo = STDIO): Promise<number> {
  const allOptions: Options = { ...GLOBAL_OPTIONS };
  for (const c of Object.values(COMMANDS)) Object.assign(allOptions, c.options);
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options: allOptions, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (e) {
    io.err(`streams: ${e instanceof Error ? e.message : String(e)}\n${help()}`);
    return EXIT.usage;
  }
  const [name, ...positionals] = parsed.positionals;
  const { values } = parsed;
  if (values.help) {
    io.out(help());
    return EXIT.ok;
  }
  const command = name === undefined ? undefined : COMMANDS[name];
  if (!command) {
    io.err(name === undefined ? help() : `streams: unknown command ${JSON.stringify(name)}\n${help()}`);
    return EXIT.usage;
  }
  const foreign = Object.keys(values).filter((k) => !(k in GLOBAL_OPTIONS) && !(k in command.options));
  if (foreign.length > 0) {
    io.err(`streams: ${name} does not take ${foreign.map((k) => `--${k}`).join(", ")}\nusage: streams ${command.usage}`);
    return EXIT.usage;
  }
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    const ctx: CommandContext = {
      positionals,
      values,
      out: io.out,
      err: io.err,
      signal: abort.signal,
      async client() {
        const baseUrl = (values.url as string | undefined) ?? process.env.STREAMS_URL;
        if (!baseUrl) throw new UsageError("no server: pass --url or set STREAMS_URL");
        const token = (values.token as string | undefined) ?? process.env.STREAMS_TOKEN;
        const namespace = values.namespace as string | undefined;
        const WebSocket = await webSocketConstructor();
        return createStreamsClient({
          baseUrl,
          ...(token ? { token } : {}),
          ...(namespace !== undefined ? { namespace } : {}),
          ...(WebSocket ? { WebSocket } : {}),
        });
      },
    };
    await command.run(ctx);
    return EXIT.ok;
  } catch (e) {
    if (e instanceof StreamError) {
      io.err(`streams: ${e.code}: ${e.message}`);
      return exitStatus(e.code);
    }
    if (e instanceof UsageError) {
      io.err(`streams: ${e.message}\nusage: streams ${command.usage}`);
      return EXIT.usage;
    }
    io.err(`streams: internal: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT.internal;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}
