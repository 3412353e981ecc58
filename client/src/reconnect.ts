// The reconnect core: one connection at a time, one reconnect path, an epoch per dial so a late
// callback of an old socket can never act on the new one, back-off reset only by progress, and
// application-level liveness (`{"type":"ping"}` → `{"type":"pong"}`, answered by the runtime
// without waking the stream). Transport-agnostic: the subscription and the browser runtime both
// drive it through `dial`.
import { StreamError } from "./errors.js";
import type { Link, LinkClose, LinkHandlers } from "./link.js";

export interface ReconnectTiming {
  /** First back-off delay; attempt n waits min(backoffMaxMs, backoffBaseMs·2^(n−1)), jittered. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** A ping is sent this long after the last one was answered. */
  pingIntervalMs: number;
  /** No pong (or any other frame) this long after a ping: the socket is dead. */
  pongTimeoutMs: number;
  /** A socket that has not opened after this long is given up. */
  connectTimeoutMs: number;
}

export const DEFAULT_TIMING: Readonly<ReconnectTiming> = Object.freeze({
  backoffBaseMs: 250,
  backoffMaxMs: 30_000,
  pingIntervalMs: 15_000,
  pongTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
});

/** How long calls wait for a connection while the core is reconnecting, by default. */
export const DEFAULT_CONNECT_WAIT_MS = 10_000;

export type ConnectionState = "idle" | "connecting" | "open" | "backoff" | "suspended" | "stopped";

export interface ConnectionStatus {
  state: ConnectionState;
  epoch: number;
  /** Consecutive failed connections since the last progress. */
  attempt: number;
  /** Why the last connection ended (absent before the first drop). */
  reason?: string;
  /** Delay of the pending reconnect, in `backoff`. */
  delayMs?: number;
}

export interface ReconnectorOptions {
  /** Opens one connection. Called once per epoch; the handlers are bound to that epoch. */
  dial(handlers: LinkHandlers, epoch: number): Link;
  /** A frame of the current connection that is not a pong. */
  onMessage(text: string, epoch: number): void;
  onOpen?(epoch: number): void;
  /** The current connection ended (dropped, closed by the peer, restarted or stopped) — not on
   * `suspend`, which keeps what was received. */
  onDrop?(reason: string): void;
  /** Stopped for good; `error` when a fatal close or a call to `stop(error)` ended it. */
  onStop?(error: StreamError | undefined): void;
  onStatus?(status: ConnectionStatus): void;
  timing?: Partial<ReconnectTiming>;
  /** For the jitter; tests pass a fixed one. */
  random?: () => number;
}

const PING = JSON.stringify({ type: "ping" });

/** Back-off before attempt n (1-based): min(max, base·2^(n−1)), then jittered into [½, 1] of it. */
export function backoffDelay(attempt: number, timing: Pick<ReconnectTiming, "backoffBaseMs" | "backoffMaxMs">, random: () => number): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const ceiling = Math.min(timing.backoffMaxMs, timing.backoffBaseMs * 2 ** exponent);
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

type Timer = ReturnType<typeof setTimeout>;
type TimerName = "reconnect" | "connect" | "ping" | "pong";

export class Reconnector {
  readonly timing: ReconnectTiming;
  #options: ReconnectorOptions;
  #random: () => number;
  #state: ConnectionState = "idle";
  #epoch = 0;
  #attempt = 0;
  #reason: string | undefined;
  #delayMs: number | undefined;
  #link: Link | undefined;
  #timers: Partial<Record<TimerName, Timer>> = {};
  #waiters = new Set<{ resolve: () => void; reject: (e: StreamError) => void; timer: Timer }>();

  constructor(options: ReconnectorOptions) {
    this.#options = options;
    this.timing = { ...DEFAULT_TIMING, ...definedOnly(options.timing ?? {}) };
    this.#random = options.random ?? Math.random;
  }

  get state(): ConnectionState {
    return this.#state;
  }
  get epoch(): number {
    return this.#epoch;
  }
  get attempt(): number {
    return this.#attempt;
  }
  status(): ConnectionStatus {
    const s: ConnectionStatus = { state: this.#state, epoch: this.#epoch, attempt: this.#attempt };
    if (this.#reason !== undefined) s.reason = this.#reason;
    if (this.#state === "backoff" && this.#delayMs !== undefined) s.delayMs = this.#delayMs;
    return s;
  }

  /** idle → connecting. */
  start(): void {
    if (this.#state === "idle") this.#connect();
  }

  /** Progress was made (a batch was handed out): the next failure waits the shortest delay again. */
  progressed(): void {
    this.#attempt = 0;
  }

  /** Sends on the current connection; false when there is none open. */
  send(text: string): boolean {
    if (this.#state !== "open" || !this.#link) return false;
    this.#link.send(text);
    return true;
  }

  /**
   * The single reconnect path: ends the connection of `epoch` (default: the current one) and
   * arms one reconnect after the back-off. A call for an older epoch, or in any state without a
   * connection, does nothing, so late callbacks of replaced sockets are harmless.
   */
  drop(reason: string, epoch: number = this.#epoch): void {
    if (epoch !== this.#epoch || (this.#state !== "connecting" && this.#state !== "open")) return;
    this.#endLink(reason);
    this.#attempt += 1;
    this.#delayMs = backoffDelay(this.#attempt, this.timing, this.#random);
    this.#setState("backoff");
    this.#setTimer("reconnect", this.#delayMs, () => {
      if (this.#state === "backoff") this.#connect();
    });
  }

  /** Replaces the current connection at once, without counting a failure (e.g. a reset seen). */
  restart(reason: string): void {
    if (this.#state !== "connecting" && this.#state !== "open" && this.#state !== "backoff") return;
    this.#clearTimer("reconnect");
    if (this.#state !== "backoff") this.#endLink(reason);
    this.#reason = reason;
    this.#connect();
  }

  /** Ends the connection and waits for `resume()` (the consumer is behind); no failure counted. */
  suspend(reason: string): void {
    if (this.#state === "stopped" || this.#state === "suspended" || this.#state === "idle") return;
    this.#clearTimer("reconnect");
    if (this.#state !== "backoff") this.#endLink(reason, { rewind: false });
    this.#reason = reason;
    this.#setState("suspended");
  }

  resume(): void {
    if (this.#state === "suspended") this.#connect();
  }

  /** Stops for good: every timer cleared, the socket closed, waiters rejected. Idempotent. */
  stop(error?: StreamError): void {
    if (this.#state === "stopped") return;
    if (this.#state === "connecting" || this.#state === "open") this.#endLink(error?.message ?? "stopped");
    this.#epoch += 1;
    this.#clearTimer("reconnect");
    this.#setState("stopped");
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(error ?? new StreamError("closed", "the subscription is closed"));
    }
    this.#waiters.clear();
    this.#options.onStop?.(error);
  }

  /** Resolves when a connection is open; rejects after `timeoutMs` (`timeout`) or on stop (`closed`). */
  whenConnected(timeoutMs: number = DEFAULT_CONNECT_WAIT_MS): Promise<void> {
    if (this.#state === "open") return Promise.resolve();
    if (this.#state === "stopped") return Promise.reject(new StreamError("closed", "the subscription is closed"));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(new StreamError("timeout", `no connection within ${timeoutMs} ms (${this.#state}${this.#reason ? `: ${this.#reason}` : ""})`));
        }, timeoutMs),
      };
      this.#waiters.add(waiter);
    });
  }

  #connect(): void {
    this.#epoch += 1;
    const epoch = this.#epoch;
    this.#setState("connecting");
    const current = () => epoch === this.#epoch && this.#state !== "stopped";
    this.#setTimer("connect", this.timing.connectTimeoutMs, () => this.drop(`not open after ${this.timing.connectTimeoutMs} ms`, epoch));
    const handlers: LinkHandlers = {
      open: () => {
        if (!current() || this.#state !== "connecting") return;
        this.#clearTimer("connect");
        this.#setState("open");
        this.#schedulePing(epoch);
        for (const w of this.#waiters) {
          clearTimeout(w.timer);
          w.resolve();
        }
        this.#waiters.clear();
        this.#options.onOpen?.(epoch);
      },
      message: (text) => {
        if (!current()) return;
        // Any frame proves the socket is alive.
        this.#clearTimer("pong");
        if (isPong(text)) return;
        this.#options.onMessage(text, epoch);
      },
      alive: () => {
        if (current()) this.#clearTimer("pong");
      },
      close: (info: LinkClose) => {
        if (!current()) return;
        const reason = `closed with ${info.code}${info.reason ? ` ${info.reason}` : ""}`;
        if (info.fatal) {
          this.#reason = reason;
          this.stop(info.fatal);
        } else {
          this.drop(reason, epoch);
        }
      },
    };
    try {
      this.#link = this.#options.dial(handlers, epoch);
    } catch (e) {
      this.#link = undefined;
      // A StreamError from dial is a setup problem (e.g. no WebSocket): retrying cannot help.
      if (e instanceof StreamError) this.stop(e);
      else this.drop(`dial failed: ${e instanceof Error ? e.message : String(e)}`, epoch);
    }
  }

  #schedulePing(epoch: number): void {
    this.#setTimer("ping", this.timing.pingIntervalMs, () => {
      if (epoch !== this.#epoch || this.#state !== "open") return;
      this.#link?.send(PING);
      if (this.#timers.pong === undefined) {
        this.#setTimer("pong", this.timing.pongTimeoutMs, () => this.drop(`no pong within ${this.timing.pongTimeoutMs} ms`, epoch));
      }
      this.#schedulePing(epoch);
    });
  }

  /** Closes the current link and clears its timers; bumps the epoch so its callbacks go stale. */
  #endLink(reason: string, { rewind = true } = {}): void {
    const link = this.#link;
    this.#link = undefined;
    this.#epoch += 1;
    this.#reason = reason;
    this.#clearTimer("connect");
    this.#clearTimer("ping");
    this.#clearTimer("pong");
    link?.close();
    if (rewind) this.#options.onDrop?.(reason);
  }

  #clearTimer(which: TimerName): void {
    const timer = this.#timers[which];
    if (timer !== undefined) clearTimeout(timer);
    delete this.#timers[which];
  }

  #setTimer(which: TimerName, ms: number, fire: () => void): void {
    this.#clearTimer(which);
    this.#timers[which] = setTimeout(() => {
      delete this.#timers[which];
      fire();
    }, ms);
  }

  #setState(state: ConnectionState): void {
    this.#state = state;
    this.#options.onStatus?.(this.status());
  }
}

function isPong(text: string): boolean {
  // The runtime answers with exactly this text; parse only what could be it.
  if (text.length > 64) return false;
  try {
    return (JSON.parse(text) as { type?: unknown }).type === "pong";
  } catch {
    return false;
  }
}

function definedOnly<T extends object>(value: Partial<T>): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
