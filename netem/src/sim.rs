//! A webrtc-rs [`Runtime`] in virtual time, the base of issue 15's `--virtual-time` runs: every
//! task of every peer on it runs on one thread, one at a time, in the order they were woken,
//! and the clock jumps to the next timer whenever no task can run (timers due at one instant
//! fire one at a time, in the order they were made). Sockets live on an in-memory
//! network (webrtc-rs's `MockUDPNetwork`), so a datagram is in the receiver's inbox the moment
//! it is sent; [`crate::ImpairedRuntime`] on top adds loss, queues and delay, on this clock.
//!
//! Unlike webrtc-rs's own `MockRuntime` (one OS thread per task, a clock a test must advance by
//! hand), nothing here waits on the wall clock: a 60 s session takes as long as its CPU work.
//! That CPU work takes no virtual time, which is the model's one big simplification (the
//! peers add a fixed cost per frame back: `rtclab_peer::config::CodecCost`).
//!
//! Work done off the runtime's thread (an encoder thread, say) must say so with
//! [`SimRuntime::busy`]: while a [`Busy`] guard lives, no task runs and the clock does not
//! jump, so virtual time never passes while a result is still being computed, and what the
//! work hands back is seen at the same point of the run every time.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, MockRuntime,
    MockUDPNetwork, Runtime,
};

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why a virtual-time run stopped before its future finished.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    /// No task can run, no timer is armed and nothing off the runtime is busy: nothing could
    /// ever wake the run again.
    #[error("virtual time stalled at {0:?}: no task can run and no timer is armed")]
    Stalled(Duration),
    /// The run went past its virtual-time limit.
    #[error("virtual time passed the limit of {0:?} before the run finished")]
    TimeLimit(Duration),
}

/// The clock and its timers: (deadline, id) in order, so the next jump is the first key.
#[derive(Default)]
struct Timers {
    elapsed: Duration,
    pending: BTreeMap<(Duration, u64), Option<Waker>>,
    /// Deadline of each pending id, to find its entry.
    deadlines: std::collections::HashMap<u64, Duration>,
    next_id: u64,
}

/// Everything the runtime's handles share.
struct Shared {
    base: Instant,
    timers: Mutex<Timers>,
    queue: Mutex<VecDeque<Arc<Task>>>,
    /// Signalled when a task is queued or a [`Busy`] guard ends.
    wake: Condvar,
    busy: AtomicUsize,
    /// Its sockets, on its in-memory network.
    sockets: MockRuntime,
    /// Tasks polled, for the run's statistics.
    polls: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is already a failed run; go on with the data as it is.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Task {
    future: Mutex<Option<BoxFuture>>,
    queued: AtomicBool,
    finished: AtomicBool,
    aborted: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            lock(&self.shared.queue).push_back(self.clone());
            self.shared.wake.notify_all();
        }
    }
}

impl Task {
    fn poll(self: &Arc<Self>) {
        self.queued.store(false, Ordering::Release);
        let mut slot = lock(&self.future);
        if self.aborted.load(Ordering::Acquire) {
            *slot = None;
        }
        let Some(future) = slot.as_mut() else {
            self.finished.store(true, Ordering::Release);
            return;
        };
        let waker = Waker::from(self.clone());
        let mut cx = Context::from_waker(&waker);
        self.shared.polls.fetch_add(1, Ordering::Relaxed);
        if future.as_mut().poll(&mut cx).is_ready() {
            *slot = None;
            self.finished.store(true, Ordering::Release);
        }
    }
}

struct SimJoinHandle(Arc<Task>);

impl JoinHandle for SimJoinHandle {
    fn detach(&self) {}

    fn abort(&self) {
        self.0.aborted.store(true, Ordering::Release);
        // Polled once more, it drops its future (and what it holds) on the runtime's thread.
        self.0.wake_by_ref();
    }

    fn is_finished(&self) -> bool {
        self.0.finished.load(Ordering::Acquire)
    }
}

/// A webrtc-rs runtime in virtual time; clone the `Arc` for every peer that shares the clock.
pub struct SimRuntime {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SimRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimRuntime")
            .field("elapsed", &self.elapsed())
            .finish_non_exhaustive()
    }
}

/// Keeps the clock from jumping while work off the runtime's thread is under way. Drop it only
/// after the result is handed over (sent on the channel a task waits on): dropped first, the
/// clock could jump in between and the result would arrive late in virtual time.
pub struct Busy(Arc<Shared>);

impl Drop for Busy {
    fn drop(&mut self) {
        // Under the queue's lock, so the run loop cannot miss it between its check and its wait.
        let _queue = lock(&self.0.queue);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
        self.0.wake.notify_all();
    }
}

/// What a virtual-time run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimStats {
    /// Virtual time at the end.
    pub elapsed: Duration,
    /// Task polls.
    pub polls: usize,
    /// CPU time the run's thread used (both peers' network stacks, SRTP, interceptors, the
    /// impairment; not the encoder's, decoder's or scorer's threads), for benchmarks; `None`
    /// where `/proc/thread-self/stat` cannot be read.
    pub cpu: Option<Duration>,
}

/// The calling thread's CPU time (user + system) from `/proc/thread-self/stat`, in Linux's
/// USER_HZ ticks of 10 ms (fixed at 100 per second for user space; proc(5)).
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields 14 and 15 (utime, stime), counted after the command name's closing parenthesis,
    // which may itself hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

impl Default for SimRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl SimRuntime {
    /// A runtime at virtual time zero with an empty network.
    pub fn new() -> Self {
        SimRuntime {
            shared: Arc::new(Shared {
                base: Instant::now(),
                timers: Mutex::new(Timers::default()),
                queue: Mutex::new(VecDeque::new()),
                wake: Condvar::new(),
                busy: AtomicUsize::new(0),
                sockets: MockRuntime::with_network(Arc::new(MockUDPNetwork::new())),
                polls: AtomicUsize::new(0),
            }),
        }
    }

    /// The instant [`Runtime::now`] gave at virtual time zero.
    pub fn epoch(&self) -> Instant {
        self.shared.base
    }

    /// Virtual time since the runtime was made.
    pub fn elapsed(&self) -> Duration {
        lock(&self.shared.timers).elapsed
    }

    /// The in-memory network its sockets are on.
    pub fn network(&self) -> Arc<MockUDPNetwork> {
        self.shared.sockets.network()
    }

    /// Marks work off the runtime's thread; the clock waits until the guard is dropped.
    pub fn busy(&self) -> Busy {
        self.shared.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.shared.clone())
    }

    fn spawn_task(&self, future: BoxFuture) -> Arc<Task> {
        let task = Arc::new(Task {
            future: Mutex::new(Some(future)),
            queued: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            shared: self.shared.clone(),
        });
        task.wake_by_ref();
        task
    }

    fn register(&self, delay: Duration) -> u64 {
        let mut t = lock(&self.shared.timers);
        let deadline = t.elapsed + delay;
        let id = t.next_id;
        t.next_id += 1;
        t.pending.insert((deadline, id), None);
        t.deadlines.insert(id, deadline);
        id
    }

    /// Runs `future` and every task it spawns until `future` finishes, jumping the clock to
    /// the next timer whenever nothing can run; stops with an error past `limit` of virtual
    /// time, or when nothing could ever run again. Call it from one thread at a time.
    pub fn run<F>(&self, future: F, limit: Duration) -> Result<SimStats, SimError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let main = self.spawn_task(Box::pin(future));
        let cpu_before = thread_cpu_time();
        loop {
            // Nothing runs while work off the thread is under way: what it hands back then
            // joins the queue behind what was already there, whatever the wall clock did, so
            // the order of everything stays the same from run to run.
            let next = {
                let mut queue = lock(&self.shared.queue);
                while self.shared.busy.load(Ordering::Acquire) > 0 {
                    queue = self
                        .shared
                        .wake
                        .wait_timeout(queue, Duration::from_millis(100))
                        .map_or_else(|e| e.into_inner().0, |(q, _)| q);
                }
                queue.pop_front()
            };
            if let Some(task) = next {
                task.poll();
                continue;
            }
            if main.finished.load(Ordering::Acquire) {
                return Ok(SimStats {
                    elapsed: self.elapsed(),
                    polls: self.shared.polls.load(Ordering::Relaxed),
                    cpu: thread_cpu_time()
                        .zip(cpu_before)
                        .map(|(after, before)| after.saturating_sub(before)),
                });
            }
            self.jump(limit)?;
        }
    }

    /// Moves the clock to the earliest timer and wakes it.
    fn jump(&self, limit: Duration) -> Result<(), SimError> {
        let wakers: Vec<Waker> = {
            let mut t = lock(&self.shared.timers);
            let Some(&(deadline, _)) = t.pending.keys().next() else {
                return Err(SimError::Stalled(t.elapsed));
            };
            if deadline > limit {
                return Err(SimError::TimeLimit(limit));
            }
            t.elapsed = t.elapsed.max(deadline);
            // One timer at a time, in the order the timers were made, with everything it wakes
            // run before the next: two timers due at one instant then never reach a task
            // together. (webrtc-rs's driver waits with `futures::select!`, which picks at
            // random among ready branches: a packet and a report timer due at one instant
            // were handled in either order, and the log's order within the instant varied.)
            let mut wakers = Vec::new();
            if let Some(entry) = t.pending.first_entry() {
                let ((_, id), waker) = entry.remove_entry();
                t.deadlines.remove(&id);
                wakers.extend(waker);
            }
            wakers
        };
        for w in wakers {
            w.wake();
        }
        Ok(())
    }
}

/// A timer on a [`SimRuntime`]: ready once the clock has passed its deadline.
struct Sleep {
    shared: Arc<Shared>,
    id: Option<u64>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(id) = self.id else {
            return Poll::Ready(());
        };
        let mut t = lock(&self.shared.timers);
        match t.deadlines.get(&id).copied() {
            None => {
                drop(t);
                self.id = None;
                Poll::Ready(())
            }
            Some(deadline) => {
                t.pending.insert((deadline, id), Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let mut t = lock(&self.shared.timers);
            if let Some(deadline) = t.deadlines.remove(&id) {
                t.pending.remove(&(deadline, id));
            }
        }
    }
}

/// A repeating timer whose ticks fall on exact multiples of its period (no drift).
struct Interval {
    rt: Arc<SimRuntime>,
    period: Duration,
    next: Option<Duration>,
}

impl AsyncInterval for Interval {
    fn tick(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let now = self.rt.elapsed();
        let Some(next) = self.next else {
            // The first tick fires at once, as in the built-in runtimes.
            self.next = Some(now + self.period);
            return Box::pin(std::future::ready(()));
        };
        // A tick missed while the task was elsewhere fires at once, then the grid goes on.
        let wait = next.saturating_sub(now);
        self.next = Some(next.max(now) + self.period);
        self.rt.sleep(wait)
    }
}

impl Runtime for SimRuntime {
    fn spawn(&self, future: BoxFuture) -> Box<dyn JoinHandle> {
        Box::new(SimJoinHandle(self.spawn_task(future)))
    }

    /// Moves the socket onto the in-memory network at the address the OS gave it (webrtc-rs
    /// takes its candidates' ports from the OS socket, so the port cannot be chosen here; it
    /// is the one part of a candidate that differs from run to run).
    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        self.shared.sockets.wrap_udp_socket(socket)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.shared.sockets.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.shared.sockets.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.shared.sockets.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.shared.base + self.elapsed()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let id = (!duration.is_zero()).then(|| self.register(duration));
        Box::pin(Sleep {
            shared: self.shared.clone(),
            id,
        })
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        Box::new(Interval {
            rt: Arc::new(SimRuntime {
                shared: self.shared.clone(),
            }),
            period,
            next: None,
        })
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        // Only for synchronous entry points outside a run; inside one it would stall it.
        futures::executor::block_on(future);
    }

    fn name(&self) -> &'static str {
        "rtclab-sim"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop's CPU time (for the send-path benchmark) counts work done on its thread.
    #[test]
    fn a_run_counts_the_cpu_time_of_its_thread() {
        let rt = SimRuntime::new();
        let stats = rt
            .run(
                async {
                    // Spin ~200 ms of wall time; on a busy machine the thread gets less CPU,
                    // so only a few 10 ms ticks are asked for.
                    let start = Instant::now();
                    let mut x = 0u64;
                    while start.elapsed() < Duration::from_millis(200) {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                },
                Duration::from_secs(1),
            )
            .expect("run");
        let cpu = stats
            .cpu
            .expect("/proc/thread-self/stat is readable on Linux");
        assert!(
            cpu >= Duration::from_millis(30) && cpu <= Duration::from_secs(5),
            "{cpu:?}"
        );
    }

    #[test]
    fn sleeps_take_virtual_time_only() {
        let rt = Arc::new(SimRuntime::new());
        let inner = rt.clone();
        let wall = Instant::now();
        let stats = rt
            .run(
                async move {
                    for _ in 0..100 {
                        inner.sleep(Duration::from_secs(1)).await;
                    }
                },
                Duration::from_secs(3600),
            )
            .expect("run");
        assert_eq!(stats.elapsed, Duration::from_secs(100));
        assert!(
            wall.elapsed() < Duration::from_secs(5),
            "{:?}",
            wall.elapsed()
        );
    }

    #[test]
    fn tasks_interleave_in_timer_order() {
        let rt = Arc::new(SimRuntime::new());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (a, b, l1, l2) = (rt.clone(), rt.clone(), log.clone(), log.clone());
        let main_rt = rt.clone();
        rt.run(
            async move {
                let spawner = main_rt.clone();
                let h1 = spawner.spawn(Box::pin(async move {
                    let mut iv = a.interval(Duration::from_millis(30));
                    for _ in 0..4 {
                        iv.tick().await;
                        lock(&l1).push(("a", a.elapsed().as_millis()));
                    }
                }));
                let h2 = spawner.spawn(Box::pin(async move {
                    for _ in 0..3 {
                        b.sleep(Duration::from_millis(40)).await;
                        lock(&l2).push(("b", b.elapsed().as_millis()));
                    }
                }));
                while !(h1.is_finished() && h2.is_finished()) {
                    main_rt.sleep(Duration::from_millis(1)).await;
                }
            },
            Duration::from_secs(10),
        )
        .expect("run");
        let got = lock(&log).clone();
        assert_eq!(
            got,
            [
                ("a", 0),
                ("a", 30),
                ("b", 40),
                ("a", 60),
                ("b", 80),
                ("a", 90),
                ("b", 120)
            ]
        );
    }

    #[test]
    fn a_run_that_can_never_finish_says_so() {
        let rt = SimRuntime::new();
        let err = rt
            .run(std::future::pending(), Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(err, SimError::Stalled(Duration::ZERO));
        let rt = Arc::new(SimRuntime::new());
        let inner = rt.clone();
        let err = rt
            .run(
                async move { inner.sleep(Duration::from_secs(5)).await },
                Duration::from_secs(1),
            )
            .unwrap_err();
        assert_eq!(err, SimError::TimeLimit(Duration::from_secs(1)));
    }

    #[test]
    fn the_clock_waits_for_work_off_the_thread() {
        let rt = Arc::new(SimRuntime::new());
        let inner = rt.clone();
        let stats = rt
            .run(
                async move {
                    let busy = inner.busy();
                    let (tx, rx) = futures::channel::oneshot::channel();
                    let at = inner.elapsed();
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(100));
                        // Hand the result over first, then end the guard (see `Busy`).
                        let _ = tx.send(());
                        drop(busy);
                    });
                    // A timer armed meanwhile must not fire before the thread is done.
                    let timer = inner.sleep(Duration::from_millis(10));
                    let _ = rx.await;
                    assert_eq!(inner.elapsed(), at, "time passed while work was under way");
                    timer.await;
                },
                Duration::from_secs(1),
            )
            .expect("run");
        assert_eq!(stats.elapsed, Duration::from_millis(10));
    }
}
