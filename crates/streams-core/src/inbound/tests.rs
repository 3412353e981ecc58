//! Random interleavings of commits, pump steps, wakes, closes, replacements
//! and the clock against the inbound machine, with the attachment as the only
//! state a socket keeps (as under hibernation). Each run is one seed: set
//! `INBOUND_SEED=<n>` to replay it, `INBOUND_SEEDS=<count>` for more runs.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::append::{plan_inputs, AppendContext, Origin};
use crate::limits::MAX_DELIVERY_EVENTS;
use crate::state::{Direction, StateJson};
use crate::subscription::EventFilter;
use crate::testing::MemStore;
use crate::CoreState;

/// xorshift64*: small, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const TYPES: [&str; 3] = ["app/a", "app/b", "app/rare"];
const KEYS: [&str; 3] = ["k0", "k1", "k2"];
/// `None` is full access; the others are token owners.
const OWNERS: [Option<&str>; 3] = [None, Some("alice"), Some("bob")];

/// One socket as its peer and the platform see it.
struct Peer {
    /// What the platform stores with the socket: the attachment's JSON.
    blob: String,
    start: u64,
    filter: EventFilter,
    events: bool,
    frames: Vec<Value>,
    close_code: Option<u16>,
}

impl Peer {
    fn attachment(&self) -> SocketAttachment {
        serde_json::from_str(&self.blob).expect("the stored attachment parses")
    }
    fn delivered(&self) -> Vec<u64> {
        self.frames.iter().flat_map(|f| f["events"].as_array().into_iter().flatten().map(|e| e["offset"].as_u64().unwrap_or(0))).collect()
    }
}

struct World {
    seed: u64,
    rng: Rng,
    store: MemStore,
    state: CoreState,
    json: StateJson,
    now: f64,
    peers: Vec<Peer>,
    /// Every committed event's type, by offset.
    types: BTreeMap<u64, String>,
    next_id: u64,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut world = Self {
            seed,
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            store: MemStore::default(),
            state: CoreState::default(),
            json: StateJson::default(),
            now: 1_767_000_000_000.0,
            peers: Vec::new(),
            types: BTreeMap::new(),
            next_id: 0,
        };
        world.commit(vec![
            EventInput::system(types::CREATED, json!({"namespace": "t", "path": "/p", "streamId": "s"})),
            EventInput::system(types::WOKEN, json!({"incarnationId": "i0"})),
        ]);
        world
    }

    fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        assert!(ok, "seed {}: {} (replay with INBOUND_SEED={})", self.seed, what(), self.seed);
    }

    fn commit(&mut self, inputs: Vec<EventInput>) {
        if inputs.is_empty() {
            return;
        }
        let now = self.now;
        let ctx = AppendContext { now_ms: &|| now, allowed_bindings: &[], origin: Origin::Stream };
        let plan = plan_inputs(&self.state, inputs, &self.store, &ctx).expect("valid inputs");
        self.store.commit_plan(&plan);
        for p in &plan.events {
            self.types.insert(p.event.offset, p.event.event_type.clone());
        }
        self.state = plan.state.clone();
        self.json = StateJson::default();
    }

    fn commit_domain(&mut self, n: u64) {
        let inputs = (0..n)
            .map(|_| {
                let t = if self.rng.chance(3) { TYPES[2] } else { TYPES[self.rng.below(2) as usize] };
                EventInput::system(t, json!({}))
            })
            .collect();
        self.commit(inputs);
    }

    fn live(&self) -> Vec<SocketAttachment> {
        self.peers.iter().filter(|p| p.close_code.is_none()).map(Peer::attachment).filter(|a| !a.closed).collect()
    }

    fn open(&mut self) {
        let key = (!self.rng.chance(10)).then(|| KEYS[self.rng.below(3) as usize].to_owned());
        let owner = OWNERS[self.rng.below(3) as usize].map(str::to_owned);
        let expires_at_ms = (owner.is_some() && self.rng.chance(40)).then(|| self.now + self.rng.below(5_000) as f64);
        let replay = match self.rng.below(3) {
            0 => None,
            1 => Some(0),
            _ => Some(self.rng.below(self.state.max_offset + 1)),
        };
        let filter = match self.rng.below(3) {
            0 => EventFilter(None),
            1 => EventFilter::from_types([TYPES[2].to_owned()]),
            _ => EventFilter::from_types([TYPES[0].to_owned(), types::SUBSCRIBER_CONNECTED.to_owned()]),
        };
        let events = !self.rng.chance(15);
        let params = SubscribeParams { subscription_key: key.clone(), replay_after_offset: replay, filter: filter.clone(), events };
        self.next_id += 1;
        let upgrade = Upgrade {
            identity: SocketIdentity { owner: owner.clone(), expires_at_ms },
            random_key: format!("r{}", self.next_id),
            connection_id: format!("c{}", self.next_id),
            now_iso: "2026-01-05T10:00:00.000Z".into(),
        };
        let live = self.live();
        let before: Vec<String> = self.peers.iter().map(|p| p.blob.clone()).collect();
        let holders: Vec<&SocketAttachment> = live.iter().filter(|a| Some(&a.subscription_key) == key.as_ref()).collect();
        let foreign = owner.is_some() && holders.iter().any(|h| h.owner != owner);
        match admit(&params, upgrade, &self.state, &live) {
            Err(err) => {
                self.check(foreign && err.code == ErrorCode::SubscriptionKeyInUse, || format!("refused without cause: {err}"));
                let after: Vec<String> = self.peers.iter().map(|p| p.blob.clone()).collect();
                self.check(before == after, || "a refused upgrade touched a live socket".into());
            }
            Ok(admission) => {
                self.check(!foreign, || "a socket of another owner was replaced".into());
                let mut replaced = admission.replaces.clone();
                replaced.sort();
                let mut expected: Vec<String> = holders.iter().map(|h| h.connection_id.clone()).collect();
                expected.sort();
                self.check(replaced == expected, || format!("replaced {replaced:?}, holders {expected:?}"));
                let mut facts = Vec::new();
                for peer in &mut self.peers {
                    let mut a = peer.attachment();
                    if admission.replaces.contains(&a.connection_id) && !a.closed {
                        a.closed = true;
                        peer.blob = to_json_string(&a).unwrap();
                        peer.close_code = Some(CLOSE_REPLACED);
                        facts.push(a.disconnected_fact(DisconnectReason::Replaced));
                    }
                }
                let a = admission.attachment;
                let start = a.cursor;
                facts.push(a.connected_fact());
                self.peers.push(Peer { blob: to_json_string(&a).unwrap(), start, filter, events, frames: Vec::new(), close_code: None });
                self.commit(facts);
            }
        }
    }

    /// One pump step of peer `i`, checked.
    fn step(&mut self, i: usize) {
        let mut a = self.peers[i].attachment();
        let read_before = self.store.rows_read.get();
        let at = Snapshot { state: &self.state, json: &self.json };
        let result = step(&mut a, &self.store, at, self.now, "2026-01-05T10:00:01.000Z").expect("the store reads");
        let read = self.store.rows_read.get() - read_before;
        self.check(read <= SCAN_PAGES_PER_STEP * MAX_DELIVERY_EVENTS, || format!("one step read {read} events"));
        let expired = a.expires_at_ms.is_some_and(|at| at <= self.now);
        match result {
            Step::Idle => return,
            Step::Expire => {
                self.check(expired, || "closed as expired before its expiry".into());
                self.peers[i].close_code = Some(CLOSE_TOKEN_EXPIRED);
                let fact = a.disconnected_fact(DisconnectReason::TokenExpired);
                self.peers[i].blob = to_json_string(&a).unwrap();
                self.commit(vec![fact]);
                return;
            }
            Step::Trimmed => {
                self.check(false, || "closed as trimmed, but nothing is removed here".into());
                return;
            }
            Step::Advance { .. } => {}
            Step::Send { frame, events, .. } => {
                self.check(!expired, || "a frame after the token expired".into());
                let frame: Value = serde_json::from_str(&frame).expect("frames are JSON");
                self.check_frame(i, &frame, events);
                self.peers[i].frames.push(frame);
            }
        }
        self.peers[i].blob = to_json_string(&a).unwrap();
    }

    fn check_frame(&self, i: usize, frame: &Value, events: usize) {
        let peer = &self.peers[i];
        let after = frame["afterOffset"].as_u64().unwrap_or(u64::MAX);
        let through = frame["throughOffset"].as_u64().unwrap_or(0);
        let expected_after = peer.frames.last().map_or(peer.start, |f| f["throughOffset"].as_u64().unwrap_or(0));
        if peer.events {
            self.check(after == expected_after, || format!("afterOffset {after}, expected {expected_after}"));
        }
        self.check(through >= after && through <= self.state.max_offset, || format!("through {through} after {after}"));
        let list = frame["events"].as_array().cloned().unwrap_or_default();
        self.check(list.len() == events && list.len() <= MAX_DELIVERY_EVENTS, || "the event count".into());
        let mut previous = after;
        for e in &list {
            let offset = e["offset"].as_u64().unwrap_or(0);
            let t = e["type"].as_str().unwrap_or("");
            self.check(offset > previous && offset <= through, || format!("offset {offset} out of order in ({after}, {through}]"));
            self.check(peer.filter.matches(t), || format!("{t} passed the filter"));
            previous = offset;
        }
        let first = peer.frames.is_empty();
        let has_state = frame.get("state").is_some();
        self.check(has_state == (first || !peer.events), || format!("state in frame {} of a socket (events: {})", peer.frames.len(), peer.events));
        if !peer.events {
            self.check(list.is_empty(), || "a state-only frame with events".into());
        }
    }

    /// Steps every live socket until none owes anything (a step may commit,
    /// so passes repeat until one changes nothing).
    fn drain(&mut self) {
        loop {
            let mut changed = false;
            for i in 0..self.peers.len() {
                for _ in 0..100_000 {
                    if self.peers[i].close_code.is_some() {
                        break;
                    }
                    let before = (self.peers[i].blob.clone(), self.peers[i].frames.len());
                    self.step(i);
                    if (self.peers[i].blob.clone(), self.peers[i].frames.len()) == before {
                        break;
                    }
                    changed = true;
                }
            }
            if !changed {
                return;
            }
        }
    }

    /// Every socket holds exactly the matching events of its range (all of
    /// them once drained, a prefix if it was closed).
    fn check_delivery(&self, drained: bool) {
        for (i, peer) in self.peers.iter().enumerate() {
            let a = peer.attachment();
            let wanted: Vec<u64> = if peer.events {
                self.types.range(peer.start + 1..).filter(|(o, t)| **o <= a.cursor && peer.filter.matches(t)).map(|(o, _)| *o).collect()
            } else {
                Vec::new()
            };
            let got = peer.delivered();
            let live = peer.close_code.is_none();
            // What was scanned but not yet sent can only be after the last frame.
            let sent_through = peer.frames.last().and_then(|f| f["throughOffset"].as_u64()).unwrap_or(peer.start);
            let wanted_sent: Vec<u64> = wanted.iter().copied().filter(|o| *o <= sent_through).collect();
            self.check(got == wanted_sent, || format!("socket {i}: got {got:?}, wanted {wanted_sent:?}"));
            if drained && live {
                self.check(a.cursor == self.state.max_offset, || format!("socket {i}: cursor {} behind {}", a.cursor, self.state.max_offset));
                self.check(!peer.frames.is_empty(), || format!("socket {i}: no initial frame"));
            }
        }
    }

    /// A wake: memory is gone (only attachments remain); `woken`, then the
    /// presence that makes the roster list exactly the live sockets.
    fn wake(&mut self) {
        let live = self.live();
        let listed = |state: &CoreState| -> Vec<String> {
            let mut keys: Vec<String> = state.connections_by_key.iter().filter(|(_, c)| c.direction == Direction::Inbound).map(|(k, _)| k.clone()).collect();
            keys.sort();
            keys
        };
        let mut live_keys: Vec<String> = live.iter().map(|a| a.subscription_key.clone()).collect();
        live_keys.sort();
        let in_sync = listed(&self.state) == live_keys;
        let incarnation = format!("w{}", self.rng.next());
        self.commit(vec![woken_fact(&incarnation, !live.is_empty())]);
        let presence = wake_presence(&self.state, &live);
        self.check(!in_sync || presence.is_empty(), || format!("a wake that lost no socket wrote {} presence facts", presence.len()));
        self.commit(presence);
        self.check(listed(&self.state) == live_keys, || format!("after a wake the roster lists {:?}, the live sockets are {live_keys:?}", listed(&self.state)));
    }

    fn run(&mut self, ops: usize) {
        for _ in 0..ops {
            match self.rng.below(100) {
                0..=14 => self.open(),
                15..=34 => {
                    let big = self.rng.chance(10);
                    let n = 1 + self.rng.below(if big { 999 } else { 20 });
                    self.commit_domain(n);
                }
                35..=79 => {
                    if !self.peers.is_empty() {
                        let i = self.rng.below(self.peers.len() as u64) as usize;
                        if self.peers[i].close_code.is_none() {
                            self.step(i);
                        }
                    }
                }
                80..=84 => {
                    // The peer closes: the platform marks it closed.
                    if !self.peers.is_empty() {
                        let i = self.rng.below(self.peers.len() as u64) as usize;
                        let mut a = self.peers[i].attachment();
                        if !a.closed {
                            a.closed = true;
                            self.peers[i].blob = to_json_string(&a).unwrap();
                            self.peers[i].close_code = Some(CLOSE_NORMAL);
                            self.commit(vec![a.disconnected_fact(DisconnectReason::RpcBroken)]);
                        }
                    }
                }
                85..=88 => self.wake(),
                89 => {
                    // A socket vanishes without a fact (an eviction, a presence append that failed).
                    if !self.peers.is_empty() {
                        let i = self.rng.below(self.peers.len() as u64) as usize;
                        self.peers[i].close_code.get_or_insert(CLOSE_NORMAL);
                    }
                }
                _ => {
                    // Time passes; the alarm closes what expired.
                    self.now += self.rng.below(3_000) as f64;
                    let live = self.live();
                    if next_expiry(&live).is_some_and(|at| at <= self.now) {
                        for i in 0..self.peers.len() {
                            if self.peers[i].close_code.is_none() && self.peers[i].attachment().expired(self.now) {
                                self.step(i);
                            }
                        }
                    }
                }
            }
            self.check_delivery(false);
        }
        self.drain();
        self.check_delivery(true);
        // A drained filtered socket reads only what is new: O(new events), not O(log).
        let n = 1 + self.rng.below(300);
        self.commit_domain(n);
        for i in 0..self.peers.len() {
            if self.peers[i].close_code.is_some() || !self.peers[i].events || self.peers[i].attachment().expired(self.now) {
                continue;
            }
            let before = self.store.rows_read.get();
            for _ in 0..1000 {
                let blob = self.peers[i].blob.clone();
                self.step(i);
                if self.peers[i].blob == blob {
                    break;
                }
            }
            let read = self.store.rows_read.get() - before;
            self.check(read as u64 == n, || format!("socket {i} read {read} events for {n} new ones"));
        }
        self.drain();
        self.check_delivery(true);
    }
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("INBOUND_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let count = std::env::var("INBOUND_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60u64);
    let base = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs()) * 1000;
    eprintln!("inbound interleavings: seeds {base}..{} (replay one with INBOUND_SEED=<seed>)", base + count);
    (base..base + count).collect()
}

#[test]
fn random_interleavings_deliver_each_matching_event_once_in_order_and_scan_only_what_is_new() {
    for seed in seeds() {
        World::new(seed).run(60);
    }
}

fn world_with(n: u64, event_type: &str) -> World {
    let mut world = World::new(1);
    world.commit((0..n).map(|_| EventInput::system(event_type, json!({}))).collect());
    world
}

fn params(key: &str, replay: Option<u64>, filter: EventFilter) -> SubscribeParams {
    SubscribeParams { subscription_key: Some(key.into()), replay_after_offset: replay, filter, events: true }
}

fn upgrade(owner: Option<&str>, expires_at_ms: Option<f64>, id: &str) -> Upgrade {
    Upgrade {
        identity: SocketIdentity { owner: owner.map(str::to_owned), expires_at_ms },
        random_key: "r".into(),
        connection_id: id.into(),
        now_iso: "2026-01-05T10:00:00.000Z".into(),
    }
}

#[test]
fn a_filtered_socket_stores_the_cursor_it_scanned_and_yields_between_slices() {
    let world = world_with(3_000, "app/a");
    let filter = EventFilter::from_types(["app/rare".to_owned()]);
    let mut a = admit(&params("k", Some(0), filter), upgrade(None, None, "c1"), &world.state, &[]).unwrap().attachment;
    let at = Snapshot { state: &world.state, json: &world.json };
    // The initial push: nothing matches in the first slice, yet the connection gets its first frame.
    let Step::Send { events: 0, more: true, frame } = step(&mut a, &world.store, at, world.now, "t").unwrap() else { panic!("initial push") };
    assert!(frame.contains("\"state\":"));
    assert_eq!(a.cursor, MAX_DELIVERY_EVENTS as u64, "the first page is the initial push");
    let mut slices = 0;
    loop {
        match step(&mut a, &world.store, at, world.now, "t").unwrap() {
            Step::Advance { more } => {
                slices += 1;
                if !more {
                    break;
                }
            }
            other => panic!("expected an advance, got {other:?}"),
        }
    }
    assert_eq!(a.cursor, world.state.max_offset, "the scan reached the tail");
    assert_eq!(slices, 3, "the other 2902 events in slices of at most 1000");
    assert_eq!(a.pump_cursor().delivered_through, MAX_DELIVERY_EVENTS as u64, "the next frame still chains after the last one sent");
    let back: SocketAttachment = serde_json::from_str(&to_json_string(&a).unwrap()).unwrap();
    assert_eq!(back, a, "the attachment keeps both cursors");
    assert_eq!(step(&mut a, &world.store, at, world.now, "t").unwrap(), Step::Idle);
}

#[test]
fn a_filtered_step_that_misses_an_archived_segment_keeps_the_pages_it_scanned() {
    let world = world_with(3_000, "app/a");
    let filter = EventFilter::from_types(["app/rare".to_owned()]);
    let mut a = admit(&params("k", Some(0), filter), upgrade(None, None, "c1"), &world.state, &[]).unwrap().attachment;
    let at = Snapshot { state: &world.state, json: &world.json };
    let Step::Send { .. } = step(&mut a, &world.store, at, world.now, "t").unwrap() else { panic!("initial push") };
    // Five pages scanned, then the sixth needs a segment not yet fetched.
    world.store.miss_at.set(Some(a.cursor + 550));
    assert_eq!(step(&mut a, &world.store, at, world.now, "t").unwrap(), Step::Advance { more: true });
    assert_eq!(a.cursor, 600, "the scanned pages stay scanned: after the fetch the next step starts there");
    world.store.miss_at.set(Some(a.cursor + 1));
    assert!(step(&mut a, &world.store, at, world.now, "t").unwrap_err().is_pending(), "nothing scanned: the miss is the caller's to fetch");
    assert_eq!(a.cursor, 600);
    let rows = world.store.rows_read.get();
    while let Step::Advance { more: true } = step(&mut a, &world.store, at, world.now, "t").unwrap() {}
    assert_eq!(a.cursor, world.state.max_offset);
    assert_eq!(world.store.rows_read.get() - rows, (world.state.max_offset - 600) as usize, "each event scanned once");
}

#[test]
fn a_live_key_is_taken_only_by_its_owner_or_full_access() {
    let world = World::new(1);
    let alice = admit(&params("k", None, EventFilter(None)), upgrade(Some("alice"), None, "c1"), &world.state, &[]).unwrap().attachment;
    let live = [alice.clone()];
    let err = admit(&params("k", None, EventFilter(None)), upgrade(Some("bob"), None, "c2"), &world.state, &live).unwrap_err();
    assert_eq!(err.to_string(), "subscription_key_in_use: subscriptionKey \"k\" is held by another subscriber's live socket");
    assert_eq!(admit(&params("k", None, EventFilter(None)), upgrade(Some("alice"), None, "c3"), &world.state, &live).unwrap().replaces, ["c1"]);
    assert_eq!(admit(&params("k", None, EventFilter(None)), upgrade(None, None, "c4"), &world.state, &live).unwrap().replaces, ["c1"]);
    let other_key = admit(&params("other", None, EventFilter(None)), upgrade(Some("bob"), None, "c5"), &world.state, &live).unwrap();
    assert!(other_key.replaces.is_empty());
    let mut closed = alice;
    closed.closed = true;
    assert!(admit(&params("k", None, EventFilter(None)), upgrade(Some("bob"), None, "c6"), &world.state, &[closed]).is_ok(), "a closed socket holds nothing");
}

#[test]
fn identities_come_from_the_sub_claim_or_the_token() {
    use crate::token::{Claims, Op};
    let claims = |subject: Option<&str>| {
        Access::Scoped(Claims { namespace: "n".into(), paths: vec![], ops: vec![Op::Read], expires_at: 100.0, not_before: None, subject: subject.map(str::to_owned) })
    };
    let a1 = SocketIdentity::of(&claims(Some("alice")), Some("token-1"));
    let a2 = SocketIdentity::of(&claims(Some("alice")), Some("token-2"));
    assert_eq!(a1, a2, "a refreshed token of the same subject is the same identity");
    assert_eq!(a1.expires_at_ms, Some(100_000.0));
    assert_ne!(SocketIdentity::of(&claims(None), Some("token-1")).owner, SocketIdentity::of(&claims(None), Some("token-2")).owner);
    assert_ne!(SocketIdentity::of(&claims(None), Some("alice")).owner, a1.owner, "a token is never mistaken for a subject");
    assert_eq!(SocketIdentity::of(&Access::Full, None), SocketIdentity::default());
    assert_eq!(SocketIdentity::default().to_header(), None);
    let header = a1.to_header().unwrap();
    assert_eq!(SocketIdentity::from_header(Some(&header)).unwrap(), a1);
    assert_eq!(SocketIdentity::from_header(None).unwrap(), SocketIdentity::default());
    assert!(SocketIdentity::from_header(Some("{")).is_err());
    let lasting = SocketIdentity { owner: a1.owner.clone(), expires_at_ms: None };
    assert_eq!(SocketIdentity::from_header(lasting.to_header().as_deref()).unwrap(), lasting);
}

#[test]
fn an_expired_socket_is_closed_instead_of_sent_to() {
    let mut world = world_with(5, "app/a");
    let mut a = admit(&params("k", Some(0), EventFilter(None)), upgrade(Some("alice"), Some(world.now + 10.0), "c1"), &world.state, &[]).unwrap().attachment;
    assert_eq!(next_expiry([&a]), Some(world.now + 10.0));
    let at = Snapshot { state: &world.state, json: &world.json };
    assert!(matches!(step(&mut a, &world.store, at, world.now, "t").unwrap(), Step::Send { .. }));
    world.now += 10.0;
    world.commit_domain(1);
    let at = Snapshot { state: &world.state, json: &world.json };
    assert_eq!(step(&mut a, &world.store, at, world.now, "t").unwrap(), Step::Expire);
    assert!(a.closed);
    assert_eq!(next_expiry([&a]), None, "a closed socket arms nothing");
    assert_eq!(step(&mut a, &world.store, at, world.now, "t").unwrap(), Step::Idle);
}

#[test]
fn frames_after_the_first_carry_no_state_unless_state_only() {
    let world = world_with(250, "app/a");
    let at = Snapshot { state: &world.state, json: &world.json };
    let mut a = admit(&params("k", Some(0), EventFilter(None)), upgrade(None, None, "c1"), &world.state, &[]).unwrap().attachment;
    let mut with_state = Vec::new();
    while let Step::Send { frame, .. } = step(&mut a, &world.store, at, world.now, "t").unwrap() {
        with_state.push(frame.contains("\"state\":"));
    }
    assert_eq!(with_state, [true, false, false]);
    let mut only = SubscribeParams { events: false, ..params("s", Some(0), EventFilter(None)) };
    only.replay_after_offset = None;
    let mut s = admit(&only, upgrade(None, None, "c2"), &world.state, &[]).unwrap().attachment;
    let Step::Send { frame, more: false, .. } = step(&mut s, &world.store, at, world.now, "t").unwrap() else { panic!("state-only push") };
    assert!(frame.contains("\"state\":"));
}

/// docs/protocol.md#retention: retention that overtakes a socket (events it has not been sent yet
/// removed) closes it instead of sending on from the first kept offset, which would leave a gap the
/// frames' chain cannot show; the client reconnects from its checkpoint and is refused as `trimmed`.
#[test]
fn a_socket_that_retention_overtook_is_closed_instead_of_skipping_events() {
    let mut world = world_with(5, "app/a");
    let mut a = admit(&params("k", Some(0), EventFilter(None)), upgrade(None, None, "c1"), &world.state, &[]).unwrap().attachment;
    let at = Snapshot { state: &world.state, json: &world.json };
    assert!(matches!(step(&mut a, &world.store, at, world.now, "t").unwrap(), Step::Send { .. }));
    let sent = a.cursor;
    world.commit_domain(5);
    world.store.trim_before(sent + 3);
    let at = Snapshot { state: &world.state, json: &world.json };
    assert_eq!(step(&mut a, &world.store, at, world.now, "t").unwrap(), Step::Trimmed);
    assert!(a.closed);
    assert_eq!(a.cursor, sent, "nothing past the gap was taken as sent");
    assert_eq!(step(&mut a, &world.store, at, world.now, "t").unwrap(), Step::Idle);

    // A socket that was sent everything retention removed goes on.
    let mut b = admit(&params("k2", Some(sent + 2), EventFilter(None)), upgrade(None, None, "c2"), &world.state, &[]).unwrap().attachment;
    assert!(matches!(step(&mut b, &world.store, at, world.now, "t").unwrap(), Step::Send { events: 3, .. }));
}
