//! The sans-I/O model of one direction: packets in with a time, deliveries out when due.
//!
//! Per packet, in order: outage → every n-th → Gilbert-Elliott → Bernoulli loss and duplication
//! (both str0m-netem) → bottleneck queue (rate, drop-tail) → propagation delay and jitter.
//! Time is only ever an argument; randomness only comes from the seed.

use crate::accounting::{Accounting, DirectionStats, DropCause, IntervalStats, Link};
use crate::config::{ConfigError, ImpairmentConfig, Schedule};
use crate::delay::{DelayLine, DelaySpec};
use crate::link::{LinkQueue, Queued};
use crate::loss::Stage;
use crate::schedule::{Breakpoint, Settings, Timeline};
use crate::seed::derive_seed;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// A datagram and whatever the caller needs to send or deliver it (`meta`).
#[derive(Debug, Clone, PartialEq)]
pub struct Packet<M> {
    /// The UDP payload.
    pub payload: Bytes,
    /// Caller's data, carried through untouched (addresses, socket, sequence number, ...).
    pub meta: M,
}

/// A packet leaving the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery<M> {
    /// The packet.
    pub packet: Packet<M>,
    /// When it entered the model.
    pub sent_at: Instant,
    /// When it is due at the far end (≤ the `now` it was polled at).
    pub deliver_at: Instant,
    /// Time spent in the bottleneck queue, its own transmission included (zero when unlimited).
    pub queue_delay: Duration,
    /// True for the extra copy made by `duplicate_pct`.
    pub duplicate: bool,
}

/// What the model did with a packet handed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Queued for delivery.
    Accepted,
    /// Queued for delivery, and a copy too.
    Duplicated,
    /// Dropped, for this reason.
    Dropped(DropCause),
}

/// A change of settings, from the schedule or from [`Impairer::apply`].
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The direction.
    pub link: Link,
    /// When, in seconds after the start.
    pub at_s: f64,
    /// End of the period starting here, if any.
    pub until_s: Option<f64>,
    /// The fields that change, with their new values.
    pub settings: ImpairmentConfig,
    /// Which fields change; a field here but absent in `settings` went back to its default.
    pub mask: ImpairmentConfig,
    /// Where the change came from: the schedule's label (`scenario NAME`), or what a live
    /// control said (`page`, `api`, `preset NAME`, `reset`, `outage`).
    pub source: String,
}

impl Change {
    /// The changed fields as a JSON object; a field that went back to its default is `null`.
    pub fn settings_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.settings)
            .unwrap_or_else(|_| serde_json::Value::Object(Default::default()));
        if let (Some(obj), Ok(serde_json::Value::Object(mask))) =
            (value.as_object_mut(), serde_json::to_value(&self.mask))
        {
            for key in mask.keys() {
                obj.entry(key.clone()).or_insert(serde_json::Value::Null);
            }
        }
        value
    }
}

#[derive(Debug, Clone)]
struct InFlight<M> {
    packet: Packet<M>,
    sent_at: Instant,
    queue_delay: Duration,
    duplicate: bool,
}

/// Stream tags for [`derive_seed`], so that no two random streams of a direction coincide.
const SEED_BURST: u64 = 1 << 32;
const SEED_RANDOM: u64 = 2 << 32;
const SEED_JITTER: u64 = 3 << 32;

/// Source of schedule changes until [`Impairer::set_label`] or [`Impairer::play`] names them.
pub const DEFAULT_LABEL: &str = "scenario";

/// The impairment engine of one direction (sans-I/O).
pub struct Impairer<M> {
    link: Link,
    start: Instant,
    seed: u64,
    points: Vec<Breakpoint>,
    next_point: usize,
    config: ImpairmentConfig,
    settings: Settings,
    burst: Option<Stage>,
    random: Option<Stage>,
    epoch: u64,
    nth_seen: u64,
    queue: Option<LinkQueue<InFlight<M>>>,
    line: DelayLine<InFlight<M>>,
    acct: Accounting,
    changes: Vec<Change>,
    /// Source of the changes the schedule makes (see [`Change::source`]).
    label: String,
    now: Instant,
    window_start: Instant,
}

impl<M: Clone> Impairer<M> {
    /// A model of `link` following `schedule` from `start`, its randomness derived from `seed`
    /// and the direction (so both ends of a session agree on a direction's pattern).
    pub fn new(
        link: Link,
        schedule: &Schedule,
        start: Instant,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        let timeline = Timeline::compile(schedule, link.as_str())?;
        Ok(Self::from_timeline(link, timeline, start, seed))
    }

    /// A model that passes everything through unchanged (still counting).
    pub fn unimpaired(link: Link, start: Instant) -> Self {
        let timeline = Timeline {
            base: ImpairmentConfig::default(),
            points: Vec::new(),
        };
        Self::from_timeline(link, timeline, start, 0)
    }

    fn from_timeline(link: Link, timeline: Timeline, start: Instant, seed: u64) -> Self {
        let seed = derive_seed(
            seed,
            match link {
                Link::Downlink => 1,
                Link::Uplink => 2,
            },
        );
        let mut d = Impairer {
            link,
            start,
            seed,
            points: timeline.points,
            next_point: 0,
            config: ImpairmentConfig::default(),
            settings: Settings::resolve(&ImpairmentConfig::default()),
            burst: None,
            random: None,
            epoch: 0,
            nth_seen: 0,
            queue: None,
            line: DelayLine::new(derive_seed(seed, SEED_JITTER)),
            acct: Accounting::default(),
            changes: Vec::new(),
            label: DEFAULT_LABEL.to_owned(),
            now: start,
            window_start: start,
        };
        d.set_config(start, timeline.base);
        d
    }

    /// Which direction this is.
    pub fn link(&self) -> Link {
        self.link
    }

    /// The settings in force (as of the last time passed in).
    pub fn config(&self) -> &ImpairmentConfig {
        &self.config
    }

    /// Hands a packet to the model at `now`.
    pub fn handle_packet(&mut self, now: Instant, packet: Packet<M>) -> Verdict {
        let now = self.advance(now);
        let len = packet.payload.len();
        self.acct.on_input(len);
        if self.settings.outage {
            return self.drop(DropCause::Outage, len);
        }
        if self.settings.nth > 0 {
            self.nth_seen += 1;
            if self.nth_seen.is_multiple_of(u64::from(self.settings.nth)) {
                return self.drop(DropCause::Nth, len);
            }
        }
        if let Some(stage) = &mut self.burst
            && stage.copies(now) == 0
        {
            return self.drop(DropCause::Burst, len);
        }
        let copies = self.random.as_mut().map_or(1, |s| s.copies(now));
        if copies == 0 {
            return self.drop(DropCause::Random, len);
        }
        let copy = (copies > 1).then(|| packet.clone());
        if !self.admit(now, packet, false) {
            if copy.is_some() {
                // The copy would have met the same full queue.
                self.acct.on_duplicate(len);
                self.acct.on_drop(DropCause::QueueOverflow, len);
            }
            return Verdict::Dropped(DropCause::QueueOverflow);
        }
        match copy {
            Some(copy) => {
                self.acct.on_duplicate(len);
                self.admit(now, copy, true);
                Verdict::Duplicated
            }
            None => Verdict::Accepted,
        }
    }

    /// Lets time pass to `now` without a packet (applies due schedule steps).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    /// The next packet due by `now`, if any.
    pub fn poll_output(&mut self, now: Instant) -> Option<Delivery<M>> {
        let now = self.advance(now);
        let (item, at) = self.line.pop_due(now)?;
        self.acct.on_output(item.packet.payload.len());
        Some(Delivery {
            packet: item.packet,
            sent_at: item.sent_at,
            deliver_at: at,
            queue_delay: item.queue_delay,
            duplicate: item.duplicate,
        })
    }

    /// When the model next needs time to pass: a delivery, a departure from the bottleneck or
    /// a schedule step. `None` when nothing is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let step = self
            .points
            .get(self.next_point)
            .and_then(|p| self.start.checked_add(p.at));
        [
            self.line.next_at(),
            self.queue.as_ref().and_then(LinkQueue::next_departure),
            step,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When the schedule next changes the settings, if it still will.
    pub fn next_change_at(&self) -> Option<Instant> {
        self.points
            .get(self.next_point)
            .and_then(|p| self.start.checked_add(p.at))
    }

    /// Names the source of the changes the schedule makes from now on (`scenario NAME`).
    pub fn set_label(&mut self, label: impl Into<String>) {
        self.label = label.into();
    }

    /// Replaces the fields `config` sets, at `now`, outside the schedule; the others keep their
    /// value. Later schedule steps still replace the fields they list.
    pub fn apply(
        &mut self,
        now: Instant,
        config: &ImpairmentConfig,
        source: &str,
    ) -> Result<(), ConfigError> {
        config.validate(self.link.as_str())?;
        let mut merged = self.config.clone();
        merged.overlay(config);
        self.put(now, merged, config.clone(), None, source);
        Ok(())
    }

    /// Makes `config` the whole setting at `now`: a field it does not set is turned off.
    /// Later schedule steps still replace the fields they list.
    pub fn replace(
        &mut self,
        now: Instant,
        config: &ImpairmentConfig,
        source: &str,
    ) -> Result<(), ConfigError> {
        config.validate(self.link.as_str())?;
        // Every field set before or now changes: the ones `config` lacks go back to off.
        let mut mask = self.config.clone();
        mask.overlay(config);
        self.put(now, config.clone(), mask, None, source);
        Ok(())
    }

    /// Plays `schedule` from `now`: its base settings replace the current ones, and its steps
    /// follow at their times counted from `now`, logged with `label` as their source. Replaces
    /// whatever schedule was playing.
    pub fn play(
        &mut self,
        now: Instant,
        schedule: &Schedule,
        label: &str,
    ) -> Result<(), ConfigError> {
        let timeline = Timeline::compile(schedule, self.link.as_str())?;
        let now = self.advance(now);
        let offset = now.saturating_duration_since(self.start);
        let offset_s = offset.as_secs_f64();
        self.points = timeline
            .points
            .into_iter()
            .map(|mut p| {
                p.at += offset;
                p.at_s += offset_s;
                p.until_s = p.until_s.map(|u| u + offset_s);
                p
            })
            .collect();
        self.next_point = 0;
        self.label = label.to_owned();
        let mut mask = self.config.clone();
        mask.overlay(&timeline.base);
        self.put(now, timeline.base, mask, None, label);
        Ok(())
    }

    /// A clean link from `now`: every setting off, and no schedule left to play.
    pub fn reset(&mut self, now: Instant, source: &str) {
        let now = self.advance(now);
        self.points.clear();
        self.next_point = 0;
        let mask = self.config.clone();
        self.put(now, ImpairmentConfig::default(), mask, None, source);
    }

    /// 100 % loss from `now` for `length`; then `outage` goes back to what it was. A schedule
    /// step in between that sets `outage` is overridden at the end.
    pub fn outage(&mut self, now: Instant, length: Duration, source: &str) {
        let now = self.advance(now);
        let before = self.config.outage;
        let end = now + length;
        let start_s = now.saturating_duration_since(self.start).as_secs_f64();
        let end_at = end.saturating_duration_since(self.start);
        let outage_only = ImpairmentConfig {
            outage: Some(true),
            ..Default::default()
        };
        let mut on = self.config.clone();
        on.overlay(&outage_only);
        self.put(
            now,
            on,
            outage_only.clone(),
            Some(start_s + length.as_secs_f64()),
            source,
        );
        // The end is a breakpoint like a schedule step's, so it happens at its exact time.
        let end_point = Breakpoint {
            at: end_at,
            at_s: end_at.as_secs_f64(),
            until_s: None,
            changed: ImpairmentConfig {
                outage: before,
                ..Default::default()
            },
            mask: outage_only,
            source: Some(source.to_owned()),
        };
        let pending = &self.points[self.next_point..];
        let at = self.next_point + pending.partition_point(|p| p.at <= end_at);
        self.points.insert(at, end_point);
    }

    /// Puts `config` in force at `now` (after the steps due by then) and records the change:
    /// `mask` names the fields that changed, `until_s` the end of a period.
    fn put(
        &mut self,
        now: Instant,
        config: ImpairmentConfig,
        mask: ImpairmentConfig,
        until_s: Option<f64>,
        source: &str,
    ) {
        let now = self.advance(now);
        let settings = config.masked(&mask);
        self.set_config(now, config);
        if mask.is_empty() {
            // Nothing was set before or after (e.g. a scenario that leaves the uplink alone):
            // no line, rather than an empty one.
            return;
        }
        self.changes.push(Change {
            link: self.link,
            at_s: now.saturating_duration_since(self.start).as_secs_f64(),
            until_s,
            settings,
            mask,
            source: source.to_owned(),
        });
    }

    /// Changes of settings since the last call, oldest first.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// Totals since the start and the state now.
    pub fn stats(&self) -> DirectionStats {
        DirectionStats {
            link: self.link,
            input: self.acct.input,
            output: self.acct.output,
            dropped: self.acct.dropped,
            duplicated: self.acct.duplicated,
            capacity_bps: self.settings.rate_bps,
            queue_packets: self.queue.as_ref().map_or(0, |q| q.len() as u64),
            queue_bytes: self.queue.as_ref().map_or(0, LinkQueue::payload_bytes),
            in_flight_packets: self.line.len() as u64,
            queue_delay: self.acct.total_delay.summary(),
        }
    }

    /// The figures of the interval since the last call (or the start), up to `now`; starts the
    /// next interval.
    pub fn take_interval(&mut self, now: Instant) -> IntervalStats {
        let now = self.advance(now);
        let duration = now.saturating_duration_since(self.window_start);
        self.window_start = now;
        self.acct.take_window(self.link, duration)
    }

    fn drop(&mut self, cause: DropCause, len: usize) -> Verdict {
        self.acct.on_drop(cause, len);
        Verdict::Dropped(cause)
    }

    fn spec(&self) -> DelaySpec {
        DelaySpec {
            delay: self.settings.delay,
            jitter: self.settings.jitter,
            distribution: self.settings.distribution,
            reorder: self.settings.reorder,
        }
    }

    /// Queues a packet at the bottleneck (or sends it straight on when unlimited).
    fn admit(&mut self, now: Instant, packet: Packet<M>, duplicate: bool) -> bool {
        let spec = self.spec();
        let len = packet.payload.len();
        let item = InFlight {
            packet,
            sent_at: now,
            queue_delay: Duration::ZERO,
            duplicate,
        };
        let Some(queue) = &mut self.queue else {
            self.acct.on_queue_exit(Duration::ZERO);
            self.line.push(now, &spec, item);
            return true;
        };
        let q = Queued {
            item,
            arrived: now,
            bits: (len as f64 + f64::from(self.settings.overhead)) * 8.0,
            payload: len,
        };
        match queue.enqueue(
            now,
            q,
            self.settings.queue_limit,
            self.settings.queue_limit_bytes,
        ) {
            Ok(()) => true,
            Err(_) => {
                self.acct.on_drop(DropCause::QueueOverflow, len);
                false
            }
        }
    }

    /// Moves packets whose transmission has ended by `t` from the bottleneck onto the line.
    fn flush(&mut self, t: Instant) {
        let spec = self.spec();
        let Impairer {
            queue, line, acct, ..
        } = self;
        if let Some(queue) = queue {
            queue.advance(t, |q, departed| {
                let queue_delay = departed.saturating_duration_since(q.arrived);
                acct.on_queue_exit(queue_delay);
                let item = InFlight {
                    queue_delay,
                    ..q.item
                };
                line.push(departed, &spec, item);
            });
        }
    }

    /// Applies the schedule steps due by `now` at their exact times; returns `now`, never
    /// earlier than a time seen before (time does not go backwards).
    fn advance(&mut self, now: Instant) -> Instant {
        let now = now.max(self.now);
        self.now = now;
        while let Some(point) = self.points.get(self.next_point) {
            let Some(at) = self.start.checked_add(point.at) else {
                break;
            };
            if at > now {
                break;
            }
            let point = point.clone();
            self.next_point += 1;
            // Serve the bottleneck at the old rate up to the step, then switch.
            self.flush(at);
            let mut config = self.config.clone();
            config.assign_masked(&point.changed, &point.mask);
            self.set_config(at, config);
            self.changes.push(Change {
                link: self.link,
                at_s: point.at_s,
                until_s: point.until_s,
                settings: point.changed,
                mask: point.mask,
                source: point.source.unwrap_or_else(|| self.label.clone()),
            });
        }
        self.flush(now);
        now
    }

    /// Puts `config` in force at `t`, keeping the state of parts it does not change.
    fn set_config(&mut self, t: Instant, config: ImpairmentConfig) {
        let new = Settings::resolve(&config);
        let old = std::mem::replace(&mut self.settings, new.clone());
        match (new.rate_bps, &mut self.queue) {
            (Some(rate), Some(queue)) => queue.set_rate(t, rate),
            (Some(rate), None) => self.queue = Some(LinkQueue::new(rate, t)),
            (None, Some(_)) => {
                // The rate limit was lifted: whatever waited leaves now.
                let spec = self.spec();
                if let Some(mut queue) = self.queue.take() {
                    for q in queue.drain() {
                        let queue_delay = t.saturating_duration_since(q.arrived);
                        self.acct.on_queue_exit(queue_delay);
                        let item = InFlight {
                            queue_delay,
                            ..q.item
                        };
                        self.line.push(t, &spec, item);
                    }
                }
            }
            (None, None) => {}
        }
        // A loss model keeps its state (e.g. Gilbert-Elliott in a burst) unless its own
        // parameters change; a new instance gets a fresh stream (str0m-netem reseeds on every
        // `set_config`, which would replay the same pattern after each step).
        if new.burst != old.burst {
            self.epoch += 1;
            self.burst = new
                .burst
                .as_ref()
                .map(|ge| Stage::burst(ge, derive_seed(self.seed, SEED_BURST + self.epoch)));
        }
        if (new.loss, new.duplicate) != (old.loss, old.duplicate) {
            self.epoch += 1;
            self.random = (new.loss > 0.0 || new.duplicate > 0.0).then(|| {
                Stage::random(
                    new.loss,
                    new.duplicate,
                    derive_seed(self.seed, SEED_RANDOM + self.epoch),
                )
            });
        }
        if new.nth != old.nth {
            self.nth_seen = 0;
        }
        self.config = config;
    }
}
/// The live controls of a direction, whatever its packets carry: lets the runtime drive its
/// egress and ingress models (different `M`) through one code path.
pub trait LiveModel {
    /// See [`Impairer::apply`].
    fn apply(
        &mut self,
        now: Instant,
        config: &ImpairmentConfig,
        source: &str,
    ) -> Result<(), ConfigError>;
    /// See [`Impairer::replace`].
    fn replace(
        &mut self,
        now: Instant,
        config: &ImpairmentConfig,
        source: &str,
    ) -> Result<(), ConfigError>;
    /// See [`Impairer::play`].
    fn play(&mut self, now: Instant, schedule: &Schedule, label: &str) -> Result<(), ConfigError>;
    /// See [`Impairer::reset`].
    fn reset(&mut self, now: Instant, source: &str);
    /// See [`Impairer::outage`].
    fn outage(&mut self, now: Instant, length: Duration, source: &str);
    /// See [`Impairer::config`].
    fn config(&self) -> &ImpairmentConfig;
}

impl<M: Clone> LiveModel for Impairer<M> {
    fn apply(
        &mut self,
        now: Instant,
        config: &ImpairmentConfig,
        source: &str,
    ) -> Result<(), ConfigError> {
        Impairer::apply(self, now, config, source)
    }
    fn replace(
        &mut self,
        now: Instant,
        config: &ImpairmentConfig,
        source: &str,
    ) -> Result<(), ConfigError> {
        Impairer::replace(self, now, config, source)
    }
    fn play(&mut self, now: Instant, schedule: &Schedule, label: &str) -> Result<(), ConfigError> {
        Impairer::play(self, now, schedule, label)
    }
    fn reset(&mut self, now: Instant, source: &str) {
        Impairer::reset(self, now, source)
    }
    fn outage(&mut self, now: Instant, length: Duration, source: &str) {
        Impairer::outage(self, now, length, source)
    }
    fn config(&self) -> &ImpairmentConfig {
        Impairer::config(self)
    }
}
