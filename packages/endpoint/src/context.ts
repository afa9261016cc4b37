import { Code } from "./code.js";
import { clearLongTimeout, type LongTimeout, setLongTimeout } from "./long-timeout.js";
import {
  createMetadata,
  emptyMetadata,
  type Metadata,
  type MetadataInit,
  mergeMetadata,
} from "./metadata.js";
import { ServiceError } from "./service-error.js";

/**
 * A typed key for a value carried by a {@link Context}. Make one with {@link createContextKey}.
 */
export interface ContextKey<T> {
  /** The identity of the key. */
  readonly id: symbol;
  /** What `ctx.value(key)` returns when the context holds no value for the key. */
  readonly defaultValue: T;
  /** A name for debugging. */
  readonly description: string;
}

/** Options of {@link createContextKey}. */
export interface ContextKeyOptions {
  /** A name for debugging (and the registry name when `shared`). */
  description?: string;
  /**
   * Register the key's symbol globally (`Symbol.for("svckit:" + description)`) so two copies of a
   * package that define the same key agree on it. Needs a namespaced `description`.
   */
  shared?: boolean;
}

/**
 * Creates a typed context key. Each call makes a distinct key unless `shared` is set.
 *
 * @example
 * ```ts
 * const userKey = createContextKey<string | undefined>(undefined, { description: "user" });
 * const ctx2 = ctx.with(userKey, "ada");
 * ctx2.value(userKey); // "ada"
 * ```
 */
export function createContextKey<T>(defaultValue: T, options?: ContextKeyOptions): ContextKey<T> {
  const description = options?.description ?? "context key";
  if (options?.shared === true && options.description === undefined) {
    throw new TypeError("createContextKey: a shared key needs a description");
  }
  const id = options?.shared === true ? Symbol.for(`svckit:${description}`) : Symbol(description);
  return Object.freeze({ id, defaultValue, description });
}

/**
 * Where a context's cancellation may come from besides its parent, its deadline and an
 * `AbortSignal`: a transport's request (client gone) is the usual one. It is consulted lazily:
 * `isCancelled` when someone asks `ctx.aborted`, `subscribe` only once someone asks for
 * `ctx.signal`. So a request nobody watches costs no listener and no AbortController.
 *
 * Keep one source object per transport (not per request); the per-request object is the `target`.
 *
 * @example
 * ```ts
 * const disconnect: CancelSource<ServerResponse> = {
 *   isCancelled: (res) => res.destroyed && !res.writableFinished,
 *   subscribe(res, cancel) {
 *     const onClose = () => { if (!res.writableFinished) cancel(); };
 *     res.once("close", onClose);
 *     return () => res.off("close", onClose);
 *   },
 * };
 * ```
 */
export interface CancelSource<T> {
  /** Whether `target` is cancelled now. */
  isCancelled(target: T): boolean;
  /** Calls `cancel` once `target` is cancelled; returns a function that stops listening. */
  subscribe(target: T, cancel: (reason?: unknown) => void): () => void;
}

/** What {@link createContext} builds a root context from. */
export interface ContextInit<T = unknown> {
  /** Incoming request metadata (headers / gRPC metadata). */
  metadata?: MetadataInit;
  /** Metadata to send on outgoing client calls. */
  outgoingMetadata?: MetadataInit;
  /** An absolute deadline (epoch ms or a Date). */
  deadline?: number | Date;
  /** A relative deadline in ms from now; the earlier of `deadline` and `timeout` wins. */
  timeout?: number;
  /** An external signal that cancels the context. */
  signal?: AbortSignal;
  /** A lazily consulted cancellation source; see {@link CancelSource}. */
  cancelSource?: CancelSource<T>;
  /** The object `cancelSource` watches (e.g. the HTTP response). */
  cancelTarget?: T;
  /** What the transport knows about the call; read back with `ctx.value(callInfoKey)`. */
  callInfo?: CallInfo;
}

/**
 * What a transport knows about the call it serves, put in the context under {@link callInfoKey}
 * by svckit's server transports (and by user transports that want middleware to see it). Every
 * field is bounded: route templates, never raw URLs or ids, so logs and metrics can use them as
 * labels.
 */
export interface CallInfo {
  /** The transport: `"http"`, `"grpc"`, `"jsonrpc"` or a user transport's own name. */
  readonly transport: string;
  /** The procedure: the HTTP method (`"POST"`), the full gRPC method (`"/pkg.Service/Method"`) or the JSON-RPC method. */
  readonly method: string;
  /** The route template that matched (`"/users/:id"`), when the transport knows one. */
  readonly route?: string | undefined;
}

/**
 * The context key under which server transports put the {@link CallInfo} of the call being served.
 * Shared across copies of this package (`Symbol.for("svckit:callInfo")`).
 *
 * @example
 * ```ts
 * const info = ctx.value(callInfoKey); // { transport: "http", method: "POST", route: "/sum" }
 * ```
 */
export const callInfoKey: ContextKey<CallInfo | undefined> = createContextKey<CallInfo | undefined>(
  undefined,
  { description: "callInfo", shared: true },
);

/**
 * A child context that can be cancelled, returned by `withCancel`, `withTimeout` and `withDeadline`.
 * Call `cancel` when the work is over or must stop (like Go's `cancel()`), or `release` to drop the
 * timer and the listeners on the parent without aborting anything. Both may be destructured
 * (`const { context, cancel } = ctx.withCancel()`); each read gives a new function bound to the handle,
 * so keep the one you pass as an event listener if you will remove it.
 */
export interface CancelableContext {
  /** The child context. */
  readonly context: Context;
  /** Aborts the child's signal (reason: CANCELLED unless given) and releases its resources. */
  cancel(reason?: unknown): void;
  /** Drops the child's timer and parent listeners without aborting; safe to call more than once. */
  release(): void;
}

/**
 * The per-call context every endpoint receives: immutable, explicit, transport-neutral.
 * It carries cancellation (an `AbortSignal`, created only when asked for), an optional deadline,
 * incoming and outgoing metadata, and typed values. Derive new contexts with the `with*` methods.
 *
 * @example
 * ```ts
 * const endpoint: Endpoint<string, string> = async (ctx, name) => {
 *   const res = await fetch(`http://127.0.0.1:9000/${name}`, { signal: ctx.signal });
 *   return res.text();
 * };
 * ```
 */
export interface Context {
  /** Aborted when the call is cancelled or its deadline passes; the reason is a {@link ServiceError}. */
  readonly signal: AbortSignal;
  /** Whether the call is cancelled or past its deadline (does not create the signal). */
  readonly aborted: boolean;
  /** Why the call was aborted (CANCELLED or DEADLINE_EXCEEDED, or a given reason), if it was. */
  readonly abortReason: ServiceError | undefined;
  /** The deadline in epoch milliseconds, if any. */
  readonly deadline: number | undefined;
  /** Incoming request metadata, keys lower-cased. */
  readonly metadata: Metadata;
  /** Metadata that client transports send with outgoing calls made with this context. */
  readonly outgoingMetadata: Metadata;
  /** Milliseconds until the deadline (0 once passed), or `undefined` without a deadline. */
  timeRemaining(): number | undefined;
  /** Throws the abort reason if the context is aborted. */
  throwIfAborted(): void;
  /** The value stored under `key`, or the key's default. */
  value<T>(key: ContextKey<T>): T;
  /** A new context with `value` stored under `key`. */
  with<T>(key: ContextKey<T>, value: T): Context;
  /** A new context whose incoming metadata has `init` merged on top (keys in `init` replace). */
  withMetadata(init: MetadataInit): Context;
  /** A new context whose outgoing metadata has `init` merged on top (keys in `init` replace). */
  withOutgoingMetadata(init: MetadataInit): Context;
  /** A child that is also cancelled by its own `cancel`. */
  withCancel(): CancelableContext;
  /** A child whose deadline is at most `ms` from now (never later than this context's; `Infinity` adds none). */
  withTimeout(ms: number): CancelableContext;
  /** A child whose deadline is at most `deadline` (never later than this context's; `Infinity` adds none). */
  withDeadline(deadline: number | Date): CancelableContext;
}

function deadlineExceeded(): ServiceError {
  return new ServiceError(Code.DEADLINE_EXCEEDED, "deadline exceeded");
}

function toReason(reason: unknown): ServiceError {
  if (reason === undefined) return new ServiceError(Code.CANCELLED, "context cancelled");
  if (reason instanceof ServiceError) return reason;
  return ServiceError.from(reason, Code.CANCELLED);
}

/**
 * The cancellation state shared by a context and the contexts derived from it with `with`.
 * The AbortController, timers and listeners exist only once someone asks for the signal (of this
 * scope or of a child). A child whose signal is watched registers itself with its parent, and the
 * parent aborts its registered children directly: no `abort` listener is added to the parent's
 * signal per child (so many concurrent children neither leak listeners nor trip Node's
 * MaxListenersExceededWarning), and a parent whose last watching child is released drops its own
 * timer and listeners again unless its own signal was asked for.
 */
class Scope {
  reason: ServiceError | undefined = undefined;
  /** Whether anything can ever cancel this scope: a bare root (like `background`) cannot. */
  readonly cancellable: boolean;
  #controller: AbortController | undefined = undefined;
  #timer: LongTimeout | undefined = undefined;
  #cleanups: (() => void)[] | undefined = undefined;
  /** Watching children; each keeps this scope active and is aborted when this scope is. */
  #children: Set<Scope> | undefined = undefined;
  /** Whether someone asked for this scope's own signal, or watches it (see {@link Scope.watch}). */
  #signalled = false;
  /** A callback told when this scope aborts, set by {@link Scope.watch}: a signal without the AbortController. */
  #watcher: ((reason: ServiceError) => void) | undefined = undefined;
  /** Whether the timer, the parent registration and the listeners are set up. */
  #active = false;
  #released = false;

  constructor(
    readonly parent: Scope | undefined,
    readonly deadline: number | undefined,
    readonly external: AbortSignal | undefined,
    readonly source: CancelSource<unknown> | undefined,
    readonly target: unknown,
    /** A handle can cancel it (`createCancelableContext`), whatever else it has. */
    byHandle = false,
  ) {
    this.cancellable =
      byHandle ||
      parent !== undefined ||
      deadline !== undefined ||
      external !== undefined ||
      source !== undefined;
  }

  /** Returns the abort reason, noticing a passed deadline, a cancelled parent or source. */
  check(): ServiceError | undefined {
    if (this.reason !== undefined) return this.reason;
    if (this.deadline !== undefined && Date.now() >= this.deadline) return this.fire(deadlineExceeded());
    const fromParent = this.parent?.check();
    if (fromParent !== undefined) return this.fire(fromParent);
    if (this.external?.aborted === true) return this.fire(toReason(this.external.reason));
    if (this.source?.isCancelled(this.target) === true) {
      return this.fire(new ServiceError(Code.CANCELLED, "request cancelled"));
    }
    return undefined;
  }

  get signal(): AbortSignal {
    if (this.#controller !== undefined) return this.#controller.signal;
    const controller = new AbortController();
    this.#controller = controller;
    this.#signalled = true;
    const reason = this.check();
    if (reason !== undefined) controller.abort(reason);
    else this.#activate();
    return controller.signal;
  }

  /**
   * Calls `fn` once when this scope aborts (at once if it already has), with the same timers and
   * registrations as a watched signal but no AbortController or event listener: what the `timeout`
   * middleware uses per call. One watcher per scope; `release()` drops it.
   */
  watch(fn: (reason: ServiceError) => void): void {
    const reason = this.check();
    if (reason !== undefined) {
      fn(reason);
      return;
    }
    this.#watcher = fn;
    this.#signalled = true;
    this.#activate();
  }

  /** Sets up what makes the signal abort on time: parent registration, listeners, the timer. */
  #activate(): void {
    if (this.#active || this.#released || this.reason !== undefined || !this.cancellable) return;
    this.#active = true;
    const parent = this.parent;
    if (parent?.cancellable) {
      parent.#attach(this);
      this.#onCleanup(() => parent.#detach(this));
      if (!this.#active) return; // the parent aborted while activating and aborted this scope too
    }
    const external = this.external;
    if (external !== undefined) {
      const onAbort = (): void => {
        this.fire(toReason(external.reason));
      };
      external.addEventListener("abort", onAbort, { once: true });
      this.#onCleanup(() => external.removeEventListener("abort", onAbort));
    }
    const source = this.source;
    if (source !== undefined && this.#active) {
      this.#onCleanup(
        source.subscribe(this.target, (r) =>
          this.fire(r === undefined ? new ServiceError(Code.CANCELLED, "request cancelled") : toReason(r)),
        ),
      );
    }
    this.#arm();
  }

  #attach(child: Scope): void {
    if (this.#children === undefined) this.#children = new Set();
    this.#children.add(child);
    this.#activate();
  }

  #detach(child: Scope): void {
    const children = this.#children;
    if (children === undefined) return;
    children.delete(child);
    if (children.size === 0 && !this.#signalled) this.#deactivate();
  }

  /** Registers what undoes a step of {@link Scope.#activate}; runs it at once if already inactive. */
  #onCleanup(fn: () => void): void {
    if (!this.#active) fn();
    else if (this.#cleanups === undefined) this.#cleanups = [fn];
    else this.#cleanups.push(fn);
  }

  #arm(): void {
    if (this.deadline === undefined || !this.#active) return;
    const delay = this.deadline - Date.now();
    if (delay <= 0) {
      this.fire(deadlineExceeded());
      return;
    }
    // A shared function with the scope as its argument: no closure per call.
    const timer = setLongTimeout(Scope.#onTimer, delay, this);
    timer.unref?.();
    this.#timer = timer;
  }

  static #onTimer(this: void, scope: Scope): void {
    scope.#timer = undefined;
    // The deadline is wall-clock time: if the clock was set back (or the timer fired a hair early), wait on.
    if (scope.check() === undefined) scope.#arm();
  }

  fire(reason: ServiceError): ServiceError {
    if (this.reason !== undefined) return this.reason;
    this.reason = reason;
    this.#deactivate();
    this.#controller?.abort(reason);
    const watcher = this.#watcher;
    if (watcher !== undefined) {
      this.#watcher = undefined;
      watcher(reason);
    }
    const children = this.#children;
    if (children !== undefined) {
      this.#children = undefined;
      for (const child of children) child.fire(reason);
    }
    return reason;
  }

  release(): void {
    this.#released = true;
    this.#watcher = undefined;
    this.#deactivate();
  }

  #deactivate(): void {
    this.#active = false;
    if (this.#timer !== undefined) {
      clearLongTimeout(this.#timer);
      this.#timer = undefined;
    }
    const cleanups = this.#cleanups;
    if (cleanups !== undefined) {
      this.#cleanups = undefined;
      for (const fn of cleanups) fn();
    }
  }
}

interface ValueNode {
  readonly id: symbol;
  readonly value: unknown;
  readonly next: ValueNode | undefined;
}

class ContextImpl implements Context {
  constructor(
    readonly scope: Scope,
    readonly values: ValueNode | undefined,
    readonly metadata: Metadata,
    readonly outgoingMetadata: Metadata,
  ) {}

  get signal(): AbortSignal {
    return this.scope.signal;
  }

  get aborted(): boolean {
    return this.scope.check() !== undefined;
  }

  get abortReason(): ServiceError | undefined {
    return this.scope.check();
  }

  get deadline(): number | undefined {
    return this.scope.deadline;
  }

  timeRemaining(): number | undefined {
    const d = this.scope.deadline;
    return d === undefined ? undefined : Math.max(0, d - Date.now());
  }

  throwIfAborted(): void {
    const reason = this.scope.check();
    if (reason !== undefined) throw reason;
  }

  value<T>(key: ContextKey<T>): T {
    const id = key.id;
    for (let node = this.values; node !== undefined; node = node.next) {
      if (node.id === id) return node.value as T;
    }
    return key.defaultValue;
  }

  with<T>(key: ContextKey<T>, value: T): Context {
    return new ContextImpl(
      this.scope,
      { id: key.id, value, next: this.values },
      this.metadata,
      this.outgoingMetadata,
    );
  }

  withMetadata(init: MetadataInit): Context {
    return new ContextImpl(
      this.scope,
      this.values,
      mergeMetadata(this.metadata, init),
      this.outgoingMetadata,
    );
  }

  withOutgoingMetadata(init: MetadataInit): Context {
    return new ContextImpl(
      this.scope,
      this.values,
      this.metadata,
      mergeMetadata(this.outgoingMetadata, init),
    );
  }

  withCancel(): CancelableContext {
    return this.#child(this.scope.deadline);
  }

  withTimeout(ms: number): CancelableContext {
    if (!(ms >= 0)) throw new RangeError(`withTimeout: ms must be a non-negative number, got ${ms}`);
    return this.#child(Date.now() + ms);
  }

  withDeadline(deadline: number | Date): CancelableContext {
    const at = typeof deadline === "number" ? deadline : deadline.getTime();
    if (Number.isNaN(at)) throw new RangeError("withDeadline: invalid deadline");
    return this.#child(at);
  }

  #child(deadline: number | undefined): CancelableContext {
    // An infinite deadline is no deadline: never expose `Infinity` to transports as a budget.
    if (deadline === Number.POSITIVE_INFINITY) deadline = undefined;
    const parentDeadline = this.scope.deadline;
    const effective =
      parentDeadline === undefined || (deadline !== undefined && deadline < parentDeadline)
        ? deadline
        : parentDeadline;
    const scope = new Scope(this.scope, effective, undefined, undefined, undefined);
    return new Handle(new ContextImpl(scope, this.values, this.metadata, this.outgoingMetadata), scope);
  }
}

/**
 * A {@link CancelableContext}. `cancel` and `release` are getters that return a function bound to
 * this handle, so `const { context, cancel } = ctx.withCancel()` works as in Go.
 *
 * They are made when read, not stored on the handle: a transport makes a handle per call, and two
 * closures stored on it (reaching the call's scope, and through it the transport's call object) made
 * V8 pretenure two of grpc-js's per-call allocation sites under load, about 15% of a gRPC server's
 * throughput at 1 connection × 50 streams (bench/RESULTS.md, 2026-12-02, fourth entry).
 */
class Handle implements CancelableContext {
  readonly #scope: Scope;

  constructor(
    readonly context: Context,
    scope: Scope,
  ) {
    this.#scope = scope;
  }

  get cancel(): (reason?: unknown) => void {
    const scope = this.#scope;
    return (reason?: unknown): void => {
      scope.fire(toReason(reason));
    };
  }

  get release(): () => void {
    const scope = this.#scope;
    return (): void => scope.release();
  }
}

function minDeadline(deadline: number | Date | undefined, timeout: number | undefined): number | undefined {
  let at = deadline === undefined ? undefined : typeof deadline === "number" ? deadline : deadline.getTime();
  if (at !== undefined && Number.isNaN(at)) throw new RangeError("createContext: invalid deadline");
  if (timeout !== undefined) {
    if (!(timeout >= 0))
      throw new RangeError(`createContext: timeout must be a non-negative number, got ${timeout}`);
    const fromTimeout = Date.now() + timeout;
    at = at === undefined ? fromTimeout : Math.min(at, fromTimeout);
  }
  return at === Number.POSITIVE_INFINITY ? undefined : at;
}

/**
 * Creates a root context: what a transport does once per incoming request, and what code outside a
 * request (a job, a CLI) uses to call endpoints.
 *
 * @example
 * ```ts
 * const ctx = createContext({ timeout: 2_000, outgoingMetadata: { "x-tenant": "acme" } });
 * await client(ctx, { s: "abc" });
 * ```
 */
export function createContext<T>(init?: ContextInit<T>): Context {
  if (init === undefined) return background;
  return rootContext(init, false);
}

function rootContext<T>(init: ContextInit<T>, byHandle: boolean): ContextImpl {
  const scope = new Scope(
    undefined,
    minDeadline(init.deadline, init.timeout),
    init.signal,
    init.cancelSource as CancelSource<unknown> | undefined,
    init.cancelTarget,
    byHandle,
  );
  return new ContextImpl(
    scope,
    init.callInfo === undefined ? undefined : { id: callInfoKey.id, value: init.callInfo, next: undefined },
    init.metadata === undefined ? emptyMetadata : createMetadata(init.metadata),
    init.outgoingMetadata === undefined ? emptyMetadata : createMetadata(init.outgoingMetadata),
  );
}

/**
 * Creates a root context with a handle to end it: what a transport uses per incoming call.
 * `release()` when the call is over drops the deadline timer and the listeners on `signal` and
 * `cancelSource` that watching the context set up (nothing is aborted); `cancel()` aborts it.
 *
 * @example
 * ```ts
 * const call = createCancelableContext({ timeout: 5_000, metadata: req.headers });
 * try {
 *   return await endpoint(call.context, request);
 * } finally {
 *   call.release();
 * }
 * ```
 */
export function createCancelableContext<T>(init: ContextInit<T> = {}): CancelableContext {
  const context = rootContext(init, true);
  return new Handle(context, context.scope);
}

/**
 * Calls `fn` once when `ctx` is aborted (its deadline passes, its parent or source cancels it), without
 * creating its AbortSignal; returns false for a context this package did not make (use its signal then).
 * Internal to this package: not exported from the index.
 */
export function watchContext(ctx: Context, fn: (reason: ServiceError) => void): boolean {
  if (!(ctx instanceof ContextImpl)) return false;
  ctx.scope.watch(fn);
  return true;
}

/**
 * Calls `fn` once, with the reason, when `ctx` is aborted: its deadline passes, or it or a context it
 * derives from is cancelled (like Go's `context.AfterFunc`). If `ctx` already is, `fn` runs before
 * `onAbort` returns. What waits for something on behalf of a call (a queue slot, a timer, a reply)
 * uses it to give up when the call does.
 *
 * It watches a child of `ctx`, so many waiters sharing one long-lived context add no listeners to
 * that context's signal (Node warns past 10), and a context made by this package is watched without
 * an AbortController or event listener. Call the returned `stop` when the wait is over: it drops the
 * child (its timer and its link to `ctx`) and returns whether it kept `fn` from running.
 *
 * @example
 * ```ts
 * const stop = onAbort(ctx, (reason) => reject(reason));
 * try {
 *   resolve(await somethingSlow());
 * } finally {
 *   stop();
 * }
 * ```
 */
export function onAbort(ctx: Context, fn: (reason: ServiceError) => void): () => boolean {
  let pending = true;
  if (ctx instanceof ContextImpl && !ctx.scope.cancellable) {
    // Nothing can ever abort it (e.g. `background`): no child to watch.
    return (): boolean => {
      const was = pending;
      pending = false;
      return was;
    };
  }
  const child = ctx.withCancel();
  let unlisten: (() => void) | undefined;
  const fire = (reason: ServiceError): void => {
    if (!pending) return;
    pending = false;
    unlisten?.();
    child.release();
    // The context's own reason when it has one: the child's timer can fire first with an equal
    // DEADLINE_EXCEEDED of its own, and callers compare with ctx.abortReason.
    fn(ctx.abortReason ?? reason);
  };
  const watched = child.context;
  if (watched instanceof ContextImpl) {
    watched.scope.watch(fire);
  } else {
    const signal = watched.signal;
    const listener = (): void => fire(toReason(signal.reason));
    if (signal.aborted) listener();
    else {
      signal.addEventListener("abort", listener, { once: true });
      unlisten = () => signal.removeEventListener("abort", listener);
    }
  }
  return (): boolean => {
    if (!pending) return false;
    pending = false;
    unlisten?.();
    child.release();
    return true;
  };
}

/**
 * The empty root context: never cancelled, no deadline, no metadata, no values.
 * Derive from it; it is shared, so never wait on its signal expecting an abort.
 */
export const background: Context = new ContextImpl(
  new Scope(undefined, undefined, undefined, undefined, undefined),
  undefined,
  emptyMetadata,
  emptyMetadata,
);
