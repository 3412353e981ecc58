//! The `Stream` Durable Object: boot, the append path with its post-commit
//! side effects, reads, `kill`/`reset`, and the JS-RPC methods that
//! `src/entry.mjs` forwards (docs/protocol.md#stream-lifecycle, docs/architecture.md#the-append-path, docs/protocol.md#durable-object-rpc). Decisions live in `core`;
//! this file wires them to storage, time and the runtime.

mod inbound;
mod outbound;
mod store;
mod tiering;

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;

use futures::future::{join_all, LocalBoxFuture};
use futures::FutureExt;
use serde_json::{json, Map, Value};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use worker::{durable_object, Env, Request, Response, State, WebSocket, WebSocketIncomingMessage};

use crate::directory;
use crate::wire::error_response;
use streams_core::append::plan_plain;
use streams_core::directory::{next_report, DirectoryEntry, ReportStep};
use streams_core::inbound::woken_fact;
use streams_core::limits::{MAX_GET_EVENTS_BYTES, MAX_SAFE_INTEGER};
use streams_core::name::{ancestors, resolve_stream_path};
use streams_core::plain_input::{plain_append_inputs, PlainInputs};
use streams_core::read::{created_at_ms, read_page, window, FilteredRead, MonotonicClock, Start, Window};
use streams_core::reducer::reduce;
use streams_core::rpc::{AppendArgs, Call, GetEventArgs, GetEventsArgs, StreamMethod};
use streams_core::state::StateJson;
use streams_core::subscription::EventFilter;
use streams_core::json::json_len;
use streams_core::store::{replay_until, snapshot_due, state_before, stored_name, AssumeNewKeys, ReplayFetches, SharedPage, StoredEvent};
use streams_core::time::iso_from_ms;
use streams_core::unwritten::{check_first_append, event_not_found, on_unwritten, runtime_state_json, OnUnwritten};
use streams_core::{
    child_notice, load_state, plan_append, plan_inputs, types, AppendContext, AppendPlan, CoreState, ErrorCode, Event, EventInput, EventStore,
    Origin, StreamError, StreamName, StreamResult,
};
use crate::js::{argument_json, argument_json_from, argument_text, from_json_text, from_json_texts, to_js_error};
use crate::settings::Settings;
use crate::stub::call_stream;
use outbound::Links;
use streams_core::outbound::{CommitSummary, Outbound};
pub use store::{ArchiveBucket, SqlStore};
use store::is_duplicate_key;

const SHUTTING_DOWN: &str = "stream incarnation is shutting down; retry";
const NAMELESS: &str = "this call reached the stream without its name (by id, or by a name over 1024 bytes) and the stream does not exist yet; call it by name (getByName or idFromName)";

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = crypto, js_name = randomUUID)]
    pub(crate) fn random_uuid() -> String;

    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &JsValue, delay_ms: i32);
}

/// Resolves on a later task (a timer), not a microtask: calls waiting for
/// the object run first.
pub(super) async fn next_task() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let resolve = Closure::once_into_js(move || {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        });
        set_timeout(&resolve, 0);
    });
    let _ = JsFuture::from(promise).await;
}

/// One in-memory life of the object.
enum Incarnation {
    NotBooted,
    Running(Box<Runtime>),
    /// The object's own name is invalid: every call fails, nothing is written.
    Broken(StreamError),
    /// `kill` replied; the abort follows.
    ShuttingDown,
}

struct Runtime {
    name: StreamName,
    state: CoreState,
    /// `state` as JSON, made when a batch first needs it after a commit.
    state_json: StateJson,
    /// The outbound subscriptions' state machine, and its connections' platform side.
    outbound: Outbound,
    links: Links,
    /// The last small page a socket's pump read, for the other pumps (until the next commit).
    page: SharedPage,
}

#[durable_object]
pub struct Stream {
    inner: Rc<Inner>,
}

/// The object's state, shared with the background tasks it spawns
/// (deliveries, dials, pumps), which must own what they use.
pub(crate) struct Inner {
    ctx: State,
    env: Env,
    store: SqlStore,
    settings: Settings,
    incarnation: RefCell<Incarnation>,
    /// Bumped whenever in-memory state is dropped, so stale tasks stop.
    generation: Cell<u64>,
    /// Whether this object may hold sockets: checked at boot, set on accept.
    /// Spares every commit a `getWebSockets()` call on streams without any.
    may_have_sockets: Cell<bool>,
    /// Sockets (by connection id) with a pump scheduled: at most one each.
    pumping: RefCell<BTreeSet<String>>,
    /// Commits made by this object, for the `simulateHibernation` report.
    commits: Cell<u64>,
    /// The `STREAMS_ARCHIVE` bucket, when bound (docs/operations.md#the-archive).
    archive: Option<ArchiveBucket>,
    tiering: RefCell<tiering::Tiering>,
    /// `createdAt` for new events: never behind the last one written.
    clock: Rc<MonotonicClock>,
    now_ms: Box<dyn Fn() -> f64>,
    /// Long-polls waiting for the next commit: their promises' resolvers.
    commit_waiters: RefCell<Vec<js_sys::Function>>,
    /// When this object last reported to the directory, and whether a report is scheduled.
    directory_reported_at: Cell<Option<f64>>,
    directory_report_scheduled: Cell<bool>,
}

impl worker::DurableObject for Stream {
    fn new(ctx: State, env: Env) -> Self {
        console_error_panic_hook::set_once();
        let store = SqlStore::new(&ctx.storage());
        let settings = Settings::from_env(&env);
        let archive = ArchiveBucket::bound(&env);
        inbound::answer_pings(&ctx);
        let clock = Rc::new(MonotonicClock::default());
        let stream_clock = clock.clone();
        let inner = Inner {
            ctx,
            env,
            store,
            settings,
            incarnation: RefCell::new(Incarnation::NotBooted),
            generation: Cell::new(0),
            may_have_sockets: Cell::new(true),
            pumping: RefCell::default(),
            commits: Cell::new(0),
            archive,
            tiering: RefCell::default(),
            clock,
            now_ms: Box::new(move || stream_clock.now(js_sys::Date::now())),
            commit_waiters: RefCell::default(),
            directory_reported_at: Cell::new(None),
            directory_report_scheduled: Cell::new(false),
        };
        Self { inner: Rc::new(inner) }
    }

    /// Only `/subscribe` is served here; every other path is refused.
    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let path = req.path();
        let result = if path == "/subscribe" {
            self.inner.ensure_booted().and_then(|()| self.inner.subscribe(&req))
        } else {
            Err(StreamError::new(ErrorCode::NotFound, format!("no route for {} {path}", req.method())))
        };
        result.or_else(|err| error_response(&err, None))
    }

    async fn alarm(&self) -> worker::Result<Response> {
        if let Err(err) = self.inner.ensure_booted() {
            worker::console_error!("alarm: {err}");
        } else {
            self.inner.on_alarm();
            self.inner.close_expired_sockets();
            self.inner.on_alarm_tiering();
        }
        Response::empty()
    }

    async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> worker::Result<()> {
        if self.inner.ensure_booted().is_ok() {
            self.inner.on_socket_message(&ws, message);
        }
        Ok(())
    }

    async fn websocket_close(&self, ws: WebSocket, _code: usize, _reason: String, _was_clean: bool) -> worker::Result<()> {
        if self.inner.ensure_booted().is_ok() {
            self.inner.on_socket_gone(&ws);
        }
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> worker::Result<()> {
        if self.inner.ensure_booted().is_ok() {
            self.inner.on_socket_gone(&ws);
        }
        Ok(())
    }
}

/// The JS-RPC methods; `src/entry.mjs` forwards exactly these.
#[wasm_bindgen]
impl Stream {
    pub fn append(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        self.call(StreamMethod::Append, arg)
    }
    #[wasm_bindgen(js_name = appendBatch)]
    pub fn append_batch(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        self.call(StreamMethod::AppendBatch, arg)
    }
    #[wasm_bindgen(js_name = getEvent)]
    pub fn get_event(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        self.call(StreamMethod::GetEvent, arg)
    }
    #[wasm_bindgen(js_name = getEvents)]
    pub fn get_events(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        self.call(StreamMethod::GetEvents, arg)
    }
    #[wasm_bindgen(js_name = getState)]
    pub fn get_state(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        self.call(StreamMethod::GetState, arg)
    }
    #[wasm_bindgen(js_name = runtimeState)]
    pub fn runtime_state(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        self.call(StreamMethod::RuntimeState, arg)
    }
    pub fn reduce(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        self.call(StreamMethod::Reduce, arg)
    }
    pub fn reset(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        self.call(StreamMethod::Reset, arg)
    }
    pub fn kill(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        self.call(StreamMethod::Kill, arg)
    }
    #[wasm_bindgen(js_name = runIdleTeardownNow)]
    pub fn run_idle_teardown_now(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        self.call(StreamMethod::RunIdleTeardownNow, arg)
    }
    #[wasm_bindgen(js_name = simulateHibernation)]
    pub fn simulate_hibernation(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        self.call(StreamMethod::SimulateHibernation, arg)
    }
    #[wasm_bindgen(js_name = memoryUsage)]
    pub fn memory_usage(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        self.call(StreamMethod::MemoryUsage, arg)
    }
    #[wasm_bindgen(js_name = deleteStream)]
    pub fn delete_stream(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        self.call(StreamMethod::DeleteStream, arg)
    }
    #[wasm_bindgen(js_name = runArchiveNow)]
    pub fn run_archive_now(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        self.call(StreamMethod::RunArchiveNow, arg)
    }
    #[wasm_bindgen(js_name = pendingWork)]
    pub fn pending_work(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        self.call(StreamMethod::PendingWork, arg)
    }
    #[wasm_bindgen(js_name = notifyChildStreamCreated)]
    pub fn notify_child_stream_created(&self, arg: JsValue) -> Result<JsValue, JsValue> {
        self.call(StreamMethod::NotifyChildStreamCreated, arg)
    }
}

impl Stream {
    /// Answers synchronously unless the method has to wait (a forwarded call,
    /// `reset`): a promise would cost every call a task and a microtask.
    /// A call whose read needed an archived segment not yet cached answers
    /// later: the segment is fetched and the call runs again (docs/architecture.md#storage-tiers).
    fn call(&self, method: StreamMethod, arg: JsValue) -> Result<JsValue, JsValue> {
        match self.inner.handle(method, arg.clone()) {
            Ok(Reply::Now(value)) => Ok(value),
            Ok(Reply::Later(pending)) => Ok(future_to_promise(async move { pending.await.map_err(|e| to_js_error(&e)) }).into()),
            Err(err) if self.inner.store.has_miss() => {
                let inner = self.inner.clone();
                Ok(future_to_promise(async move { inner.handle_after_fetching(method, arg, err).await.map_err(|e| to_js_error(&e)) }).into())
            }
            Err(err) => Err(to_js_error(&err)),
        }
    }
}

/// What an append answers: the committed event (`single`) or the array of them, each hit on an
/// earlier call's event cut to its summary when `summarize_hits`.
fn append_reply(plan: &AppendPlan, single: bool, summarize_hits: bool) -> StreamResult<JsValue> {
    let summarized;
    let results: Vec<&str> = if summarize_hits {
        summarized = plan.results_summarizing_hits();
        summarized.iter().map(AsRef::as_ref).collect()
    } else {
        plan.results()
    };
    if single {
        from_json_text(results.first().copied().unwrap_or("null"))
    } else {
        from_json_texts(&results)
    }
}

/// A `getEvents` page: ready (and whether it is final), or a filtered read
/// waiting for an archived segment.
enum Page {
    Ready(JsValue, bool),
    Missed(FilteredRead),
}

/// What an RPC method answers: a value now, or one that a forwarded call or
/// `reset` settles later.
enum Reply {
    Now(JsValue),
    Later(LocalBoxFuture<'static, StreamResult<JsValue>>),
}

impl Inner {
    /// Fetches what the call's reads missed and runs it again, a bounded number of times.
    async fn handle_after_fetching(self: &Rc<Self>, method: StreamMethod, arg: JsValue, mut err: StreamError) -> StreamResult<JsValue> {
        const ATTEMPTS: usize = 16;
        for _ in 0..ATTEMPTS {
            if !self.fetch_missing().await? {
                return Err(err);
            }
            match self.handle(method, arg.clone()) {
                Ok(Reply::Now(value)) => return Ok(value),
                Ok(Reply::Later(pending)) => return pending.await,
                Err(again) => err = again,
            }
        }
        Err(err)
    }

    fn handle(self: &Rc<Self>, method: StreamMethod, arg: JsValue) -> StreamResult<Reply> {
        if method.is_test_hook() && !self.settings.test_hooks {
            return Err(StreamError::new(ErrorCode::NotFound, "test hooks are disabled"));
        }
        // Looking creates and boots nothing: it reports what is pending now.
        if method == StreamMethod::PendingWork {
            Call::parse(method, argument_json(&arg)?)?;
            return Ok(self.pending_work());
        }
        let call = match self.unwritten_name()? {
            // Never written: a read is answered from nothing, a refused append refused before
            // anything is written (docs/protocol.md#reads-create-nothing).
            Some(name) => {
                let call = Call::parse(method, argument_json(&arg)?)?;
                if let Some(reply) = self.answer_unwritten(&name, &call)? {
                    return Ok(reply);
                }
                self.ensure_booted()?;
                self.store.take_miss();
                call
            }
            None => {
                self.ensure_booted()?;
                self.store.take_miss();
                let text = argument_text(&arg);
                if let Some(reply) = self.append_shortcut(method, text.as_deref())? {
                    return Ok(reply);
                }
                Call::parse(method, argument_json_from(&arg, text.as_deref())?)?
            }
        };
        let value = match call {
            Call::Append(args) => return self.append_rpc(method, args),
            Call::GetEvent(args) => self.get_event_rpc(args),
            Call::GetEvents(args) => return self.get_events_rpc(args),
            Call::GetState(at_offset) => return self.get_state_rpc(at_offset),
            Call::RuntimeState => from_json_text(&self.runtime_state_json()?),
            Call::Reduce(event, state) => self.reduce_rpc(&event, state),
            Call::Reset => {
                let inner = self.clone();
                return Ok(Reply::Later(async move { inner.reset_storage().await.map(|()| JsValue::UNDEFINED) }.boxed_local()));
            }
            Call::DeleteStream => {
                let inner = self.clone();
                return Ok(Reply::Later(
                    async move {
                        inner.delete_archive().await?;
                        inner.reset_storage().await.map(|()| JsValue::UNDEFINED)
                    }
                    .boxed_local(),
                ));
            }
            Call::RunArchiveNow { now_ms, hold_after_upload } => {
                let inner = self.clone();
                let held = if hold_after_upload { self.store.set_meta(tiering::HOLD_AFTER_UPLOAD_KEY, "1") } else { self.store.delete_meta(tiering::HOLD_AFTER_UPLOAD_KEY) };
                held.map_err(log_internal)?;
                return Ok(Reply::Later(
                    async move {
                        inner.tiering_idle().await;
                        let outcome = inner.run_tiering(now_ms).await;
                        let history = inner.store.history_offsets().map_err(log_internal)?;
                        let report = json!({"storage": inner.storage_report(), "error": outcome.err(), "stateHistory": history});
                        from_json_text(&report.to_string())
                    }
                    .boxed_local(),
                ));
            }
            Call::PendingWork => return Ok(self.pending_work()),
            Call::Kill => {
                self.end_incarnation("kill requested");
                Ok(JsValue::UNDEFINED)
            }
            Call::RunIdleTeardownNow => {
                self.idle_teardown();
                Ok(JsValue::UNDEFINED)
            }
            Call::SimulateHibernation => {
                self.forget_memory();
                let before = self.commits.get();
                self.ensure_booted()?;
                from_json_text(&json!({"bootCommits": self.commits.get() - before}).to_string())
            }
            Call::MemoryUsage => from_json_text(&json!({"wasmMemoryBytes": wasm_memory_bytes()}).to_string()),
            Call::NotifyChildStreamCreated { child_path } => {
                let notice = child_notice(&self.name()?.path, &child_path)?;
                self.append_inputs(vec![notice], Origin::Stream).map(|_| JsValue::UNDEFINED)
            }
        };
        value.map(Reply::Now)
    }

    /// The `pendingWork` test hook (docs/protocol.md#test-hooks): the platform's alarm, the outbound
    /// machine's dials, deliveries and alarm, and the long-polls waiting for a commit.
    fn pending_work(&self) -> Reply {
        let mut report = self.outbound_work_report();
        report["longPolls"] = json!(self.commit_waiters.borrow().len());
        let storage = self.ctx.storage();
        Reply::Later(
            async move {
                report["alarmAt"] = json!(storage.get_alarm().await.map_err(log_worker)?);
                from_json_text(&report.to_string())
            }
            .boxed_local(),
        )
    }

    // ---- boot (docs/protocol.md#boot) ----

    /// Drops everything held in memory, as hibernation would; sockets stay.
    fn forget_memory(&self) {
        *self.incarnation.borrow_mut() = Incarnation::NotBooted;
        self.generation.set(self.generation.get() + 1);
    }

    fn ensure_booted(self: &Rc<Self>) -> StreamResult<()> {
        match &*self.incarnation.borrow() {
            Incarnation::Running(_) => return Ok(()),
            Incarnation::Broken(err) => return Err(err.clone()),
            Incarnation::ShuttingDown => return Err(StreamError::new(ErrorCode::Internal, SHUTTING_DOWN)),
            Incarnation::NotBooted => {}
        }
        let name = match self.own_name()? {
            Some(name) => name,
            // A call without the name (e.g. through another process's dev
            // registry) works when the stream exists and so knows its name.
            None => self.stored_name()?,
        };
        self.store.create_schema().map_err(log_internal)?;
        let (state, _) = load_state(&self.store, &mut |w| worker::console_warn!("{}: {w}", name.do_name())).map_err(log_internal)?;
        if let Some(last) = self.store.event_at(state.max_offset).map_err(log_internal)? {
            created_at_ms(&last.json).into_iter().for_each(|ms| self.clock.observe(ms));
        }
        let needs_created = state.event_count == 0;
        let created = needs_created.then(|| {
            EventInput::system(types::CREATED, json!({"namespace": name.namespace, "path": name.path, "streamId": random_uuid()}))
        });
        let state_json = StateJson::default();
        let outbound = self.load_outbound().map_err(log_internal)?;
        *self.incarnation.borrow_mut() = Incarnation::Running(Box::new(Runtime { name, state, state_json, outbound, links: Links::default(), page: SharedPage::default() }));
        // Hibernated sockets survive the wake; their attachments are read once.
        let open = self.open_sockets();
        let mut announce: Vec<EventInput> = created.into_iter().collect();
        announce.push(woken_fact(&random_uuid(), !open.is_empty()));
        for fact in announce {
            if let Err(err) = self.append_inputs(vec![fact], Origin::Stream) {
                // No incarnation without its `woken`: the next call boots again.
                *self.incarnation.borrow_mut() = Incarnation::NotBooted;
                return Err(err);
            }
        }
        self.reconcile_presence(&open);
        self.continue_migration();
        // A seal or a deletion a restart interrupted resumes; retention catches up.
        if self.archive.is_some() || self.with_state(|s| s.config.retention.is_some()).unwrap_or(false) {
            self.start_tiering();
        }
        Ok(())
    }

    /// Moves events of the first storage layout into the current one, one
    /// bounded step per turn of the event loop, so calls are served between
    /// steps (docs/operations.md#migrations-and-state-versions).
    fn continue_migration(self: &Rc<Self>) {
        if !self.store.migration_pending() {
            return;
        }
        let inner = self.clone();
        let generation = self.generation.get();
        let step = Closure::once_into_js(move || {
            if inner.generation.get() != generation {
                return;
            }
            match inner.store.migrate_step() {
                Ok(true) => inner.continue_migration(),
                Ok(false) => worker::console_log!("storage layout migration finished"),
                Err(err) => worker::console_error!("storage layout migration paused until the next boot: {err}"),
            }
        });
        set_timeout(&step, 0);
    }

    /// The name the runtime gave this object (`None`: reached by id, or by a
    /// name over 1024 bytes). An invalid name is permanent: every call fails
    /// and nothing is ever written.
    fn own_name(&self) -> StreamResult<Option<StreamName>> {
        let Some(name) = self.ctx.id().name() else { return Ok(None) };
        StreamName::parse(&name).map(Some).inspect_err(|err| *self.incarnation.borrow_mut() = Incarnation::Broken(err.clone()))
    }

    /// The name recorded in this object's own `S/created`, without creating anything.
    fn stored_name(&self) -> StreamResult<StreamName> {
        if !self.store.has_schema().map_err(log_internal)? {
            return Err(self.refuse_nameless());
        }
        // The stream exists: bring a first-layout database to the current one before reading it.
        self.store.create_schema().map_err(log_internal)?;
        match stored_name(&self.store).map_err(log_internal)? {
            Some(name) => Ok(name),
            None => Err(self.refuse_nameless()),
        }
    }

    /// A nameless call on an object that holds no stream can be neither
    /// answered nor turned into a stream, and the runtime gives this instance
    /// no name for as long as it lives: it ends, so that the next call, by
    /// name, starts a new instance that has one (docs/protocol.md#naming-and-paths).
    fn refuse_nameless(&self) -> StreamError {
        self.end_incarnation("nameless call on a stream that does not exist");
        StreamError::invalid_request(NAMELESS)
    }

    /// The name of this object while it holds no stream (never written, or
    /// reset) and has not booted; `None` once it exists. A nameless object
    /// holding no stream is refused here.
    fn unwritten_name(&self) -> StreamResult<Option<StreamName>> {
        if !matches!(&*self.incarnation.borrow(), Incarnation::NotBooted) || self.store.has_schema().map_err(log_internal)? {
            return Ok(None);
        }
        match self.own_name()? {
            Some(name) => Ok(Some(name)),
            None => Err(self.refuse_nameless()),
        }
    }

    /// A call on a never-written stream, decided by the core: a read is
    /// answered from nothing and a refused first append is refused, both
    /// writing nothing; `None`: boot (create the stream) and serve it.
    /// Every read, those added later included, is decided in `on_unwritten`.
    fn answer_unwritten(self: &Rc<Self>, name: &StreamName, call: &Call) -> StreamResult<Option<Reply>> {
        match call {
            Call::Append(args) if args.stream_path.is_none() => {
                check_first_append(name, args.events.clone(), &self.append_context(Origin::Caller))?;
                Ok(None)
            }
            Call::GetEvents(args) if args.wait_ms > 0 => Ok(Some(self.long_poll_unwritten(args.clone()))),
            _ => match on_unwritten(call, name)? {
                OnUnwritten::Create => Ok(None),
                OnUnwritten::Answer(None) => Ok(Some(Reply::Now(JsValue::UNDEFINED))),
                OnUnwritten::Answer(Some(json)) => Ok(Some(Reply::Now(from_json_text(&json)?))),
            },
        }
    }

    /// A long-poll on a never-written stream waits, creating nothing, for the
    /// first commit (which creates it), then reads as on any stream with the
    /// time left; `[]` when the time runs out first.
    fn long_poll_unwritten(self: &Rc<Self>, mut args: GetEventsArgs) -> Reply {
        let inner = self.clone();
        let deadline = js_sys::Date::now() + args.wait_ms as f64;
        Reply::Later(
            async move {
                loop {
                    let remaining = deadline - js_sys::Date::now();
                    if remaining <= 0.0 {
                        return from_json_text("[]");
                    }
                    inner.next_commit(remaining).await;
                    if matches!(&*inner.incarnation.borrow(), Incarnation::Running(_)) {
                        args.wait_ms = (deadline - js_sys::Date::now()).max(0.0) as u64;
                        return match inner.get_events_rpc(args)? {
                            Reply::Now(value) => Ok(value),
                            Reply::Later(pending) => pending.await,
                        };
                    }
                }
            }
            .boxed_local(),
        )
    }

    fn name(&self) -> StreamResult<StreamName> {
        match &*self.incarnation.borrow() {
            Incarnation::Running(rt) => Ok(rt.name.clone()),
            _ => Err(StreamError::new(ErrorCode::Internal, SHUTTING_DOWN)),
        }
    }

    fn state(&self) -> StreamResult<CoreState> {
        match &*self.incarnation.borrow() {
            Incarnation::Running(rt) => Ok(rt.state.clone()),
            _ => Err(StreamError::new(ErrorCode::Internal, SHUTTING_DOWN)),
        }
    }

    // ---- append (docs/architecture.md#the-append-path) ----

    fn append_rpc(self: &Rc<Self>, method: StreamMethod, args: AppendArgs) -> StreamResult<Reply> {
        if let Some(stream_path) = &args.stream_path {
            let name = self.name()?;
            let target = resolve_stream_path(&name.path, stream_path)?;
            if target != name.path {
                // Moved, not copied (`json!` would clone the events).
                let (key, events) = if args.single {
                    ("event", args.events.into_iter().next().unwrap_or_default())
                } else {
                    ("events", Value::Array(args.events))
                };
                let mut forwarded = Map::from_iter([(key.to_owned(), events)]);
                if args.summarize_hits {
                    forwarded.insert("summarizeHits".to_owned(), Value::Bool(true));
                }
                let arg = from_json_text(&Value::Object(forwarded).to_string())?;
                let (env, target) = (self.env.clone(), name.sibling(target));
                return Ok(Reply::Later(async move { call_stream(&env, &target, method, Some(&arg)).await }.boxed_local()));
            }
        }
        let plan = self.append_values(args.events)?;
        append_reply(&plan, args.single, args.summarize_hits).map(Reply::Now)
    }

    /// A plain append taken as the caller's text (docs/architecture.md#the-append-path);
    /// `None`: the call takes the general path.
    fn append_shortcut(self: &Rc<Self>, method: StreamMethod, text: Option<&str>) -> StreamResult<Option<Reply>> {
        let single = match method {
            StreamMethod::Append => true,
            StreamMethod::AppendBatch => false,
            _ => return Ok(None),
        };
        let Some(plain) = text.and_then(|text| plain_append_inputs(text, single)) else { return Ok(None) };
        let plan = self.append_plain(plain)?;
        append_reply(&plan, single, false).map(|reply| Some(Reply::Now(reply)))
    }

    fn append_values(self: &Rc<Self>, inputs: Vec<Value>) -> StreamResult<AppendPlan> {
        let keyed_size = match &inputs[..] {
            [input] if input.get("idempotencyKey").is_some_and(Value::is_string) => json_len(input).ok(),
            _ => None,
        };
        self.plan_and_commit(inputs, keyed_size, |state, inputs, store: &dyn EventStore, context| plan_append(state, inputs, store, context))
    }

    /// `append_values` for the inputs `plain_append_inputs` read.
    fn append_plain(self: &Rc<Self>, plain: PlainInputs) -> StreamResult<AppendPlan> {
        let keyed_size = match &plain.inputs[..] {
            [input] if input.idempotency_key.is_some() => Some(plain.bytes),
            _ => None,
        };
        self.plan_and_commit(plain, keyed_size, |state, plain, store: &dyn EventStore, context| plan_plain(state, plain, store, context))
    }

    /// Plans a caller's inputs and commits them. `keyed_size`: the inputs are one keyed event
    /// of this many bytes of JSON.
    fn plan_and_commit<T: Clone>(
        self: &Rc<Self>,
        mut inputs: T,
        keyed_size: Option<usize>,
        plan: impl Fn(&CoreState, T, &dyn EventStore, &AppendContext<'_>) -> StreamResult<AppendPlan>,
    ) -> StreamResult<AppendPlan> {
        let context = self.append_context(Origin::Caller);
        if keyed_size.is_some_and(|size| self.may_skip_key_lookup(size)) {
            // Planned as if the key were new; the unique index refuses a
            // repeat, which is then planned again with the lookup.
            let retry = inputs.clone();
            if let Ok(planned) = self.with_state(|state| plan(state, inputs, &AssumeNewKeys(&self.store), &context))? {
                match self.try_commit(planned) {
                    Err(err) if is_duplicate_key(&err) => {}
                    committed => return committed.map_err(log_internal),
                }
            }
            inputs = retry;
        }
        let planned = self.with_state(|state| plan(state, inputs, &self.store, &context))??;
        self.commit(planned)
    }

    /// A single small keyed append (`size` bytes of JSON) on a log whose keys are all under its
    /// unique index (not mid-migration) needs no lookup before its commit.
    fn may_skip_key_lookup(&self, size: usize) -> bool {
        const SMALL_INPUT_BYTES: usize = 64 * 1024;
        size <= SMALL_INPUT_BYTES && !self.store.migration_pending() && !self.store.has_archived_keys()
    }

    /// The stream's own appends: validated inputs, reserved types allowed.
    fn append_inputs(self: &Rc<Self>, inputs: Vec<EventInput>, origin: Origin) -> StreamResult<AppendPlan> {
        let plan = self.with_state(|state| plan_inputs(state, inputs, &self.store, &self.append_context(origin)))??;
        self.commit(plan)
    }

    /// Reads the live state in place. Planning touches only SQL, never the
    /// incarnation, so holding this borrow is safe.
    fn with_state<T>(&self, read: impl FnOnce(&CoreState) -> T) -> StreamResult<T> {
        self.with_state_json(|state, _| read(state))
    }

    /// The live state and its JSON, in place (the same rule as `with_state`).
    fn with_state_json<T>(&self, read: impl FnOnce(&CoreState, &StateJson) -> T) -> StreamResult<T> {
        match &*self.incarnation.borrow() {
            Incarnation::Running(rt) => Ok(read(&rt.state, &rt.state_json)),
            _ => Err(StreamError::new(ErrorCode::Internal, SHUTTING_DOWN)),
        }
    }

    fn append_context(&self, origin: Origin) -> AppendContext<'_> {
        AppendContext { now_ms: &*self.now_ms, allowed_bindings: &self.settings.allowed_bindings, origin }
    }

    /// Commits the plan atomically (with the state when a snapshot is due),
    /// swaps memory only on success, then runs the post-commit side effects
    /// (docs/architecture.md#the-append-path).
    /// The returned plan's `state` has moved into memory; only its events
    /// and slots remain meaningful.
    fn commit(self: &Rc<Self>, plan: AppendPlan) -> StreamResult<AppendPlan> {
        self.try_commit(plan).map_err(log_internal)
    }

    /// `commit`, with the store's error: nothing was written, memory is untouched.
    fn try_commit(self: &Rc<Self>, mut plan: AppendPlan) -> Result<AppendPlan, streams_core::StoreError> {
        if plan.events.is_empty() {
            return Ok(plan);
        }
        let before = plan.events[0].event.offset - 1;
        let snapshot = snapshot_due(before, plan.state.max_offset).then(|| plan.state.to_json());
        self.store.commit(&plan.rows(), snapshot.as_deref())?;
        self.commits.set(self.commits.get() + 1);
        let trip = plan.breaker_trip();
        if let Incarnation::Running(rt) = &mut *self.incarnation.borrow_mut() {
            rt.state = std::mem::take(&mut plan.state);
            rt.state_json = StateJson::default();
            rt.page.clear();
        }
        self.after_commit(&plan, trip);
        Ok(plan)
    }

    fn after_commit(self: &Rc<Self>, plan: &AppendPlan, trip: Option<EventInput>) {
        if plan.events.iter().any(|p| p.event.event_type == types::CREATED) {
            self.notify_ancestors();
        }
        if let Some(trip) = trip {
            if let Err(err) = self.append_inputs(vec![trip], Origin::Stream) {
                worker::console_error!("circuit breaker trip append failed: {err}");
            }
        }
        self.wake_sockets();
        self.wake_long_polls();
        self.report_to_directory_soon();
        let summary = CommitSummary::of(plan.events.iter().map(|p| (p.event.event_type.as_str(), p.event.payload_object())));
        self.outbound_after_commit(&summary);
        self.resume_paced_seal();
        let archived_or_retained = self.archive.is_some() || self.with_state(|s| s.config.retention.is_some()).unwrap_or(false);
        if archived_or_retained && plan.events.iter().any(|p| p.event.event_type == types::CONFIGURED) {
            self.start_tiering();
        } else {
            self.after_commit_tiering();
        }
    }

    /// Tells `/` and each proper prefix about this new stream (docs/protocol.md#child-streams).
    fn notify_ancestors(&self) {
        let Ok(name) = self.name() else { return };
        let env = self.env.clone();
        self.ctx.wait_until(async move {
            let notices = ancestors(&name.path).into_iter().map(|ancestor| {
                let env = env.clone();
                let target = name.sibling(ancestor);
                let notice = json!({"childPath": name.path});
                async move {
                    let sent = match from_json_text(&notice.to_string()) {
                        Ok(arg) => call_stream(&env, &target, StreamMethod::NotifyChildStreamCreated, Some(&arg)).await.map(|_| ()),
                        Err(err) => Err(err),
                    };
                    if let Err(err) = sent {
                        worker::console_warn!("child-stream-created on {} failed: {err}", target.do_name());
                    }
                }
            });
            join_all(notices).await;
        });
    }

    // ---- the directory (docs/architecture.md#the-directory) ----

    /// Reports at once after the first commit, then at most every second.
    fn report_to_directory_soon(self: &Rc<Self>) {
        let step = next_report(self.directory_reported_at.get(), self.directory_report_scheduled.get(), js_sys::Date::now());
        match step {
            ReportStep::Nothing => {}
            ReportStep::Now => self.report_to_directory(),
            ReportStep::Later(ms) => {
                self.directory_report_scheduled.set(true);
                let inner = self.clone();
                let send = Closure::once_into_js(move || {
                    inner.directory_report_scheduled.set(false);
                    inner.report_to_directory();
                });
                set_timeout(&send, ms.ceil() as i32);
            }
        }
    }

    fn report_to_directory(&self) {
        let Ok(name) = self.name() else { return };
        let last_event_at = iso_from_ms(self.clock.last_ms()).unwrap_or_default();
        let Ok(entry) = self.with_state(|state| DirectoryEntry {
            path: name.path.clone(),
            stream_id: state.stream_id.clone(),
            created_at: state.created_at.clone(),
            max_offset: state.max_offset,
            last_event_at,
        }) else {
            return;
        };
        self.directory_reported_at.set(Some(js_sys::Date::now()));
        let env = self.env.clone();
        self.ctx.wait_until(async move { directory::report(&env, &name.namespace, entry).await });
    }

    // ---- reads (docs/architecture.md#storage, docs/protocol.md#durable-object-rpc, #runtimestate) ----

    fn read<T>(&self, read: impl FnOnce(&SqlStore) -> Result<T, streams_core::StoreError>) -> StreamResult<T> {
        read(&self.store).map_err(log_internal)
    }

    /// A page by offset, time or tail, filtered by type; with `waitMs`, an
    /// empty page waits for commits until it has an event, its window is
    /// complete or the time is up (docs/protocol.md#long-poll).
    fn get_events_rpc(self: &Rc<Self>, args: GetEventsArgs) -> StreamResult<Reply> {
        let first = match self.events_page(&args)? {
            Page::Ready(page, settled) if settled || args.wait_ms == 0 => return Ok(Reply::Now(page)),
            first => first,
        };
        let inner = self.clone();
        let deadline = js_sys::Date::now() + args.wait_ms as f64;
        Ok(Reply::Later(
            async move {
                let (mut page, mut settled) = inner.finish_page(first, &args).await?;
                while !settled && args.wait_ms > 0 {
                    let remaining = deadline - js_sys::Date::now();
                    if remaining <= 0.0 {
                        return events_js(&[]);
                    }
                    inner.next_commit(remaining).await;
                    (page, settled) = inner.finish_page(inner.events_page(&args)?, &args).await?;
                }
                Ok(page)
            }
            .boxed_local(),
        ))
    }

    /// The page `args` ask for as a JS array, and whether it is final (an
    /// event, or a window with nothing left to wait for), or the filtered read
    /// that missed an archived segment (`finish_page` goes on with it). An
    /// unfiltered page goes from SQLite to JS as one string when it can (`page_js`).
    fn events_page(&self, args: &GetEventsArgs) -> StreamResult<Page> {
        let max = self.with_state(|state| state.max_offset)?;
        let first = self.store.first_offset();
        if let Start::After(after) = args.start {
            self.ensure_kept(after + 1)?;
        }
        let window = self.read(|store| window(store, args.start, args.before, args.limit, first, max))?;
        if args.filter.0.is_none() {
            let before = window.before.unwrap_or(MAX_SAFE_INTEGER);
            if let Some(page) = self.read(|store| store.page_js(window.after, before, window.limit))? {
                return Ok(Page::Ready(page, true));
            }
            let events = self.read(|store| read_page(store, &window, &args.filter, MAX_GET_EVENTS_BYTES))?;
            return self.settled_page(events, &window).map(|(page, settled)| Page::Ready(page, settled));
        }
        let mut read = FilteredRead::new(window);
        if self.read_filtered(&mut read, &args.filter)? {
            return Ok(Page::Missed(read));
        }
        self.settled_page(read.into_events(), &window).map(|(page, settled)| Page::Ready(page, settled))
    }

    /// Reads `read` on over short pages; `Ok(true)` when it missed an archived segment. A read
    /// that failed where retention removed events is `trimmed`.
    fn read_filtered(&self, read: &mut FilteredRead, filter: &EventFilter) -> StreamResult<bool> {
        match self.store.with_short_pages(|store| read.read_on(store, filter, MAX_GET_EVENTS_BYTES)) {
            Ok(()) => Ok(false),
            Err(err) if err.is_pending() => Ok(true),
            Err(err) => {
                self.ensure_kept(read.reached() + 1)?;
                Err(log_internal(err))
            }
        }
    }

    fn settled_page(&self, events: Vec<StoredEvent>, window: &Window) -> StreamResult<(JsValue, bool)> {
        let settled = !events.is_empty() || window.is_complete(self.with_state(|state| state.max_offset)?);
        Ok((events_js(&events)?, settled))
    }

    /// A page that `events_page` left missing an archived segment: fetches each segment the
    /// filtered read misses and reads on from where it stood, so each is fetched once
    /// (docs/architecture.md#storage-tiers).
    async fn finish_page(&self, page: Page, args: &GetEventsArgs) -> StreamResult<(JsValue, bool)> {
        let mut read = match page {
            Page::Ready(page, settled) => return Ok((page, settled)),
            Page::Missed(read) => read,
        };
        let mut fetches = ReplayFetches::new(read.reached());
        loop {
            if !self.fetch_missing().await? {
                return Err(StreamError::internal());
            }
            if !self.read_filtered(&mut read, &args.filter)? {
                break;
            }
            if !fetches.fetch_again(read.reached()) {
                self.ensure_kept(read.reached() + 1)?;
                return Err(log_internal(streams_core::StoreError(format!("a filtered read stopped at offset {}: fetching moved it no further", read.reached()))));
            }
        }
        let window = *read.window();
        self.settled_page(read.into_events(), &window)
    }

    /// Resolves at the next commit or after `ms`, whichever comes first.
    async fn next_commit(&self, ms: f64) {
        let mut resolver = None;
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            set_timeout(&resolve, ms.ceil() as i32);
            resolver = Some(resolve);
        });
        if let Some(resolve) = &resolver {
            self.commit_waiters.borrow_mut().push(resolve.clone());
        }
        let _ = JsFuture::from(promise).await;
        if let Some(resolve) = resolver {
            self.commit_waiters.borrow_mut().retain(|waiter| *waiter != resolve);
        }
    }

    fn wake_long_polls(&self) {
        for resolve in self.commit_waiters.take() {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    }

    /// The state right after `at_offset` (docs/protocol.md#getstate): the current one when absent.
    /// A replay from the nearest snapshot that needs archived segments not cached answers later:
    /// it keeps its place while each segment is fetched, once (docs/architecture.md#storage-tiers).
    fn get_state_rpc(self: &Rc<Self>, at_offset: Option<u64>) -> StreamResult<Reply> {
        let (max, current) = self.with_state(|state| (state.max_offset, state.to_json()))?;
        let at = match at_offset {
            None => return from_json_text(&current).map(Reply::Now),
            Some(at) if at == max => return from_json_text(&current).map(Reply::Now),
            Some(at) if at > max => return Err(StreamError::new(ErrorCode::NotFound, format!("No stream event found at offset {at}."))),
            Some(at) => at,
        };
        self.ensure_kept(at + 1)?;
        let name = self.name()?;
        let mut warn = move |w: String| worker::console_warn!("{}: {w}", name.do_name());
        let mut state = self.read(|store| state_before(store, at))?;
        match self.store.with_short_pages(|store| replay_until(store, &mut state, at, &mut warn)) {
            Ok(()) => return self.state_at_reply(&state, at).map(Reply::Now),
            Err(err) if err.is_pending() => {}
            Err(err) => {
                self.ensure_kept(state.max_offset + 1)?;
                return Err(log_internal(err));
            }
        }
        let inner = self.clone();
        let generation = self.generation.get();
        Ok(Reply::Later(
            async move {
                let replayed = inner.replay_fetching(&mut state, at, &mut warn).await;
                if inner.generation.get() != generation {
                    worker::console_warn!("getState at offset {at}: the stream was reset during the replay");
                    return Err(StreamError::internal());
                }
                match replayed {
                    Ok(()) => inner.state_at_reply(&state, at),
                    Err(why) => {
                        // Retention may have removed what the replay still needed while it waited.
                        inner.ensure_kept(state.max_offset + 1)?;
                        worker::console_error!("getState at offset {at}: {why}");
                        Err(StreamError::internal())
                    }
                }
            }
            .boxed_local(),
        ))
    }

    /// The replayed state as getState's answer; a replay that met events retention removed is `trimmed`.
    fn state_at_reply(&self, state: &CoreState, at: u64) -> StreamResult<JsValue> {
        if state.max_offset != at {
            self.ensure_kept(state.max_offset + 1)?;
        }
        from_json_text(&state.to_json())
    }

    fn get_event_rpc(&self, args: GetEventArgs) -> StreamResult<JsValue> {
        match args {
            // Offset 0 never exists: it is not_found, not trimmed.
            GetEventArgs::ByOffset(offset) => match self.ensure_kept(offset.max(1)).and_then(|()| self.read(|s| s.event_at(offset)))? {
                Some(event) => from_json_text(&event.json),
                None => Err(event_not_found(offset)),
            },
            GetEventArgs::ByIdempotencyKey(key) => match self.read(|s| s.event_by_idempotency_key(&key))? {
                Some(StoredEvent { json, .. }) => from_json_text(&json),
                None => Ok(JsValue::UNDEFINED),
            },
        }
    }

    fn runtime_state_json(&self) -> StreamResult<String> {
        let state = self.state()?;
        let runtime = json!({
            "connections": self.connections_report(),
            "redial": self.redial_report(),
            // A teardown is pending only while a connection is live; a passed
            // deadline kept as the dormancy marker is not one.
            "idleTeardownAt": self.pending_idle_teardown().and_then(iso_from_ms),
            "storage": self.storage_report(),
        });
        Ok(runtime_state_json(&state, &runtime))
    }

    /// A pure preview: nothing is persisted and no side effect runs.
    fn reduce_rpc(&self, event: &Event, supplied: Option<Box<CoreState>>) -> StreamResult<JsValue> {
        let mut state = match supplied {
            Some(state) => *state,
            None => self.state()?,
        };
        reduce(&mut state, event).map_err(|e| StreamError::invalid_event(format!("event[0]: {e}")))?;
        from_json_text(&state.to_json())
    }

    // ---- kill and reset (docs/protocol.md#kill-and-reset) ----

    /// Replies first; the abort follows on the next turn of the event loop.
    fn end_incarnation(&self, reason: &str) {
        *self.incarnation.borrow_mut() = Incarnation::ShuttingDown;
        self.generation.set(self.generation.get() + 1);
        self.wake_long_polls();
        for socket in self.ctx.get_websockets() {
            let _ = socket.close(Some(1012), Some("kill requested"));
        }
        // The abort must run with no Rust frame on the stack: it terminates the
        // running code, and unwinding through the wasm executor would wedge
        // every later future. So a timer calls `ctx.abort` bound in JS.
        let ctx: &JsValue = self.ctx.as_raw().as_ref();
        let abort = js_sys::Reflect::get(ctx, &JsValue::from_str("abort"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        match abort {
            Some(abort) => set_timeout(abort.bind1(ctx, &JsValue::from_str(reason)).as_ref(), 0),
            None => worker::console_error!("ctx.abort is unavailable; the incarnation stays shut down"),
        }
    }

    /// Whatever fails, the incarnation ends: the next call boots afresh
    /// rather than finding an object that refuses everything. Bumping the
    /// generation first makes every dial and delivery still in flight stale,
    /// so none of them writes into the new life.
    async fn reset_storage(&self) -> StreamResult<()> {
        let reset_life = self.name().ok().zip(self.state().ok().map(|state| state.stream_id));
        *self.incarnation.borrow_mut() = Incarnation::ShuttingDown;
        self.generation.set(self.generation.get() + 1);
        let storage = self.ctx.storage();
        let deleted = async {
            self.store.delete_everything().map_err(log_internal)?;
            storage.delete_alarm().await.map_err(log_worker)?;
            storage.delete_all().await.map_err(log_worker)?;
            storage.sync().await.map_err(log_worker)
        }
        .await;
        if let Some((name, stream_id)) = reset_life.filter(|_| deleted.is_ok()) {
            directory::forget(&self.env, &name.namespace, &name.path, stream_id.as_deref()).await;
        }
        self.end_incarnation("kill requested");
        deleted
    }
}

/// The size of this isolate's wasm linear memory, shared by every object in
/// it. It grows on demand and never shrinks (docs/protocol.md#test-hooks).
fn wasm_memory_bytes() -> f64 {
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    memory.buffer().unchecked_into::<js_sys::ArrayBuffer>().byte_length().into()
}

fn events_js(events: &[StoredEvent]) -> StreamResult<JsValue> {
    from_json_texts(&events.iter().map(|e| e.json.as_str()).collect::<Vec<_>>())
}

/// The wall clock as `toISOString` prints it.
fn now_iso() -> String {
    iso_from_ms(js_sys::Date::now()).unwrap_or_default()
}

/// A read that waits for an archived segment is not logged: the call runs again once it is fetched.
fn log_internal(err: streams_core::StoreError) -> StreamError {
    if !err.is_pending() {
        worker::console_error!("{err}");
    }
    StreamError::internal()
}

fn log_worker(err: worker::Error) -> StreamError {
    worker::console_error!("storage: {err}");
    StreamError::internal()
}
