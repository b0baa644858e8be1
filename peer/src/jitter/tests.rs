//! The jitter buffer on packet traces: VP8 frames of a few packets each at 30 fps, sent over a
//! link with a one-way delay, some packets lost and (maybe) repaired later.

use super::*;

const FRAME_TS: u32 = 3_000; // 90 kHz / 30 fps
const FRAME: Duration = Duration::from_micros(33_333);

/// One VP8 packet: a 1-byte payload descriptor (S = start of partition), then the frame bytes;
/// the first frame byte's low bit is 0 for a keyframe (RFC 7741 §4.2, RFC 6386 §9.1).
fn vp8(start: bool, key: bool) -> Bytes {
    let descriptor = if start { 0x10 } else { 0x00 };
    let tag = if key { 0x00 } else { 0x01 };
    Bytes::from(vec![descriptor, tag, 0xaa, 0xbb, 0xcc])
}

/// A packet on the wire: when it arrives, and what it is.
#[derive(Debug, Clone)]
struct Arrival {
    at: Instant,
    seq: u16,
    ts: u32,
    marker: bool,
    payload: Bytes,
}

/// Frames `0..frames`, `per_frame` packets each, frame 0 (and every `key_every`-th) a keyframe,
/// captured every 33 ms from `t0` and arriving `delay` later. `lost` packets arrive `repair`
/// after the next packet behind them would have (when the receiver noticed the gap), or never.
fn trace(
    t0: Instant,
    frames: u32,
    per_frame: u16,
    delay: Duration,
    lost: &dyn Fn(u16) -> bool,
    repair: Option<Duration>,
) -> Vec<Arrival> {
    let mut sent = Vec::new();
    let mut seq = 0u16;
    for f in 0..frames {
        let key = f == 0;
        let captured = t0 + FRAME * f;
        for i in 0..per_frame {
            sent.push(Arrival {
                at: captured + delay + Duration::from_micros(100) * u32::from(i),
                seq,
                ts: f * FRAME_TS,
                marker: i + 1 == per_frame,
                payload: vp8(i == 0, key),
            });
            seq = seq.wrapping_add(1);
        }
    }
    let mut out = Vec::new();
    for (i, a) in sent.iter().enumerate() {
        if !lost(a.seq) {
            out.push(a.clone());
            continue;
        }
        // The receiver notices the gap when the next packet that got through arrives.
        let noticed = sent[i + 1..].iter().find(|b| !lost(b.seq)).map(|b| b.at);
        if let (Some(r), Some(noticed)) = (repair, noticed) {
            out.push(Arrival {
                at: noticed + r,
                ..a.clone()
            });
        }
    }
    out.sort_by_key(|a| a.at);
    out
}

/// Everything the buffer does while the trace plays, polled every millisecond.
struct Played {
    decoded: Vec<(Instant, u32, bool)>,
    requests: Vec<Instant>,
    nacks: Vec<(Instant, u16)>,
    jb: JitterBuffer,
}

fn play(trace: &[Arrival], until: Instant) -> Played {
    let start = trace.first().map(|a| a.at).expect("a trace");
    let mut jb = JitterBuffer::new(Codec::Vp8);
    let mut played = Played {
        decoded: Vec::new(),
        requests: Vec::new(),
        nacks: Vec::new(),
        jb: JitterBuffer::new(Codec::Vp8),
    };
    let mut next = 0;
    let mut now = start;
    while now <= until {
        while next < trace.len() && trace[next].at <= now {
            let a = &trace[next];
            jb.insert(now, a.seq, a.ts, a.marker, a.payload.clone(), false);
            next += 1;
        }
        for action in jb.poll(now) {
            match action {
                Action::Decode(f) => played.decoded.push((now, f.ts / FRAME_TS, f.repaired)),
                Action::RequestKeyframe => played.requests.push(now),
                Action::Nack(seqs) => played.nacks.extend(seqs.into_iter().map(|s| (now, s))),
            }
        }
        now += Duration::from_millis(1);
    }
    played.jb = jb;
    played
}

#[test]
fn a_packet_retransmitted_after_1_5_rtt_is_waited_for_and_its_frame_decoded() {
    let t0 = Instant::now();
    let rtt = Duration::from_millis(200);
    // 3 packets per frame; packet 31 (frame 10) is lost and its retransmission arrives 1.5 × RTT
    // after the gap was noticed. Earlier losses (frames 2 and 5) are repaired in one RTT, so
    // the buffer has measured the link.
    let lost = |s: u16| s == 7 || s == 16 || s == 31;
    let mut t = trace(t0, 30, 3, rtt / 2, &lost, Some(rtt));
    for a in t.iter_mut().filter(|a| a.seq == 31) {
        a.at += rtt / 2; // 1.5 × RTT in all
    }
    t.sort_by_key(|a| a.at);
    let played = play(&t, t0 + Duration::from_secs(3));
    let frames: Vec<u32> = played.decoded.iter().map(|d| d.1).collect();
    assert_eq!(frames, (0..30).collect::<Vec<_>>(), "every frame, in order");
    assert!(played.requests.is_empty(), "no PLI: {:?}", played.requests);
    assert!(
        played.decoded.iter().any(|d| d.1 == 10 && d.2),
        "frame 10 was repaired"
    );
    assert_eq!(played.jb.stats().frames_given_up, 0);
}

#[test]
fn a_packet_never_repaired_leads_to_one_keyframe_request_after_the_deadline_not_before() {
    let t0 = Instant::now();
    let lost = |s: u16| s == 31; // frame 10, never repaired
    let t = trace(t0, 40, 3, Duration::from_millis(50), &lost, None);
    // The gap is noticed when packet 32 arrives.
    let noticed = t.iter().find(|a| a.seq == 32).expect("packet 32").at;
    let deadline =
        timing::DEFAULT_REPAIR.mul_f64(timing::REPAIR_ATTEMPTS) + Duration::from_millis(50);
    let played = play(&t, noticed + deadline + Duration::from_millis(200));
    assert_eq!(played.requests.len(), 1, "{:?}", played.requests);
    let asked = played.requests[0] - noticed;
    // Polled every ms, so the gap is seen up to 1 ms after the packet arrived and the request
    // up to 1 ms after the deadline; the jitter term adds 2 × ~0.2 ms (packets of a frame are
    // 100 µs apart). 5 ms covers all of it and still tells "at the deadline" from "at once".
    assert!(
        asked >= deadline && asked <= deadline + Duration::from_millis(5),
        "asked {asked:?} after the gap, deadline {deadline:?}"
    );
    // Frames 0..=9 were decoded, nothing after the loss (no keyframe came).
    let frames: Vec<u32> = played.decoded.iter().map(|d| d.1).collect();
    assert_eq!(frames, (0..10).collect::<Vec<_>>());
    let st = played.jb.stats();
    assert_eq!((st.frames_given_up, st.packets_given_up), (1, 1));
    assert!(
        st.frames_dropped > 0,
        "frames after the loss are not decodable"
    );
}

#[test]
fn a_complete_keyframe_behind_a_hole_is_decoded_without_waiting() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Codec::Vp8);
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    // Frame 0 (key) whole; frame 1 loses its last packet (2); frames 2 and 3 are keyframes.
    // Frame 2 cannot be trusted to start at packet 3 (its predecessor is the missing one), but
    // frame 3 follows frame 2's marker, so it is known whole.
    jb.insert(at(0), 0, 0, true, vp8(true, true), false);
    jb.insert(at(33), 1, 3000, false, vp8(true, false), false);
    jb.insert(at(34), 3, 6000, false, vp8(true, true), false);
    jb.insert(at(35), 4, 6000, true, vp8(false, true), false);
    jb.insert(at(66), 5, 9000, true, vp8(true, true), false);
    let decoded: Vec<u32> = jb
        .poll(at(70))
        .into_iter()
        .filter_map(|a| match a {
            Action::Decode(f) => Some(f.ts / FRAME_TS),
            Action::RequestKeyframe | Action::Nack(_) => None,
        })
        .collect();
    // Frame 0 at once; the buffer jumps over frames 1 and 2 to keyframe 3 (ts 9000) long before
    // the 550 ms deadline; frames become due at their render time, so poll again later.
    let later: Vec<u32> = jb
        .poll(at(400))
        .into_iter()
        .filter_map(|a| match a {
            Action::Decode(f) => Some(f.ts / FRAME_TS),
            Action::RequestKeyframe | Action::Nack(_) => None,
        })
        .collect();
    let all: Vec<u32> = decoded.into_iter().chain(later).collect();
    assert_eq!(all, vec![0, 3]);
    assert_eq!(jb.stats().keyframe_requests, 0);
}

#[test]
fn frames_are_held_until_due_and_the_delay_grows_while_repairs_happen() {
    let t0 = Instant::now();
    let delay = Duration::from_millis(100);
    // Every 10th packet lost and repaired one 250 ms round trip later.
    let lost = |s: u16| s % 10 == 5;
    let t = trace(t0, 90, 2, delay, &lost, Some(Duration::from_millis(250)));
    let played = play(&t, t0 + Duration::from_secs(4));
    let frames: Vec<u32> = played.decoded.iter().map(|d| d.1).collect();
    assert_eq!(frames, (0..90).collect::<Vec<_>>());
    assert!(played.requests.is_empty());
    // The playout delay now covers a repair.
    let target = played.jb.target_delay();
    assert!(
        target >= Duration::from_millis(240) && target <= Duration::from_millis(300),
        "{target:?}"
    );
    // Once it does, frames leave at a steady pace: after the first second, no gap between two
    // decoded frames exceeds the freeze threshold (3 frame intervals).
    let steady: Vec<Instant> = played
        .decoded
        .iter()
        .filter(|d| d.0 > t0 + Duration::from_secs(1))
        .map(|d| d.0)
        .collect();
    let worst = steady
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .expect("frames");
    assert!(worst <= FRAME * 3, "a {worst:?} gap between frames");
}

#[test]
fn five_percent_loss_at_200_ms_rtt_loses_no_frame() {
    // A seeded trace: 5 % random loss, 100 ms one-way, repairs one round trip plus the 50 ms
    // NACK interval after the gap; 1 repair in 20 is itself lost and repaired a round trip later.
    let t0 = Instant::now();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut lost = std::collections::HashSet::new();
    let mut twice = std::collections::HashSet::new();
    for s in 0..1_200u16 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if state % 100 < 5 {
            lost.insert(s);
            if state % 2_000 < 100 {
                twice.insert(s);
            }
        }
    }
    let rtt = Duration::from_millis(200);
    let mut t = trace(
        t0,
        300,
        4,
        rtt / 2,
        &|s| lost.contains(&s),
        Some(rtt + Duration::from_millis(50)),
    );
    for a in t.iter_mut().filter(|a| twice.contains(&a.seq)) {
        a.at += rtt + Duration::from_millis(60);
    }
    t.sort_by_key(|a| a.at);
    let played = play(&t, t0 + Duration::from_secs(12));
    assert_eq!(played.decoded.len(), 300, "{:?}", played.jb.stats());
    assert!(played.requests.is_empty());
}

#[test]
fn a_gap_is_nacked_at_once_and_only_once() {
    let t0 = Instant::now();
    let lost = |s: u16| s == 31 || s == 32;
    let t = trace(t0, 20, 3, Duration::from_millis(50), &lost, None);
    let noticed = t.iter().find(|a| a.seq == 33).expect("packet 33").at;
    let played = play(&t, t0 + Duration::from_millis(900));
    assert_eq!(
        played.nacks.iter().map(|n| n.1).collect::<Vec<_>>(),
        vec![31, 32],
        "one request for the two missing packets"
    );
    // Polled every ms: asked within a poll of the gap being seen.
    assert!(played.nacks[0].0 - noticed <= Duration::from_millis(2));
}

#[test]
fn a_packet_rebuilt_by_fec_fills_its_gap_but_is_no_repair_time_sample() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    for (rebuilt, expect) in [(true, Duration::ZERO), (false, Duration::from_millis(7))] {
        let mut jb = JitterBuffer::new(Codec::Vp8);
        // Packet 1 is missing when 2 arrives at 33 ms, and comes back at 40 ms.
        jb.insert(at(0), 0, 0, true, vp8(true, true), false);
        jb.insert(at(33), 2, 6000, true, vp8(true, true), false);
        jb.insert(at(40), 1, 3000, true, vp8(true, true), rebuilt);
        // A retransmission 7 ms after the gap is a repair-time sample (the playout delay waits
        // for it); a rebuilt packet is not, or FEC's instant rebuilds would shorten the wait
        // below what a retransmission needs.
        assert_eq!(jb.target_delay(), expect, "rebuilt = {rebuilt}");
    }
}

#[test]
fn a_packet_later_than_its_deadline_is_no_repair_time_sample() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut jb = JitterBuffer::new(Codec::Vp8);
    // Packet 1 goes missing at 33 ms and comes back 3 s later (sent again after an outage):
    // far past the deadline (1 s before any repair is measured), so it does not raise the
    // playout delay for the next 10 s.
    jb.insert(at(0), 0, 0, true, vp8(true, true), false);
    jb.insert(at(33), 2, 6000, true, vp8(true, true), false);
    jb.insert(at(3033), 1, 3000, true, vp8(true, true), false);
    assert_eq!(jb.target_delay(), Duration::ZERO);
}
