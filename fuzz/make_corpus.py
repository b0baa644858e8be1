#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target into fuzz/corpus/<target>/.

The seeds are small, real-looking inputs that get the fuzzer past the first checks of each
parser: the scenario files of scenarios/, lines of the report test fixtures, signaling
sessions, RTP packets with rtclab's header extensions, RTCP packets, and TURN exchanges. Run it
from anywhere; it rewrites the folders. The input formats are described at the top of each
fuzz_targets/*.rs file.
"""

import json
import pathlib
import shutil
import struct
import zlib

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
CORPUS = FUZZ / "corpus"


def write(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (folder / name).write_bytes(data)


def reset(target):
    shutil.rmtree(CORPUS / target, ignore_errors=True)


# --- signaling: lines of <slot><op><rest> -------------------------------------------------------

def signaling():
    reset("signaling")
    candidate = {
        "type": "candidate",
        "candidate": {
            "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
            "usernameFragment": "abcd",
        },
    }
    session = [
        "0jr1",
        "1jr1",
        "0t" + json.dumps({"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}),
        "1t" + json.dumps({"type": "answer", "sdp": "v=0\r\n"}),
        "0t" + json.dumps(candidate),
        "1t" + json.dumps({"type": "bye"}),
        "0c",
    ]
    write("signaling", "session", "\n".join(session) + "\n")
    crowd = [
        "0jroom",
        "1jroom",
        "2jroom",
        "2t" + json.dumps({"type": "offer", "sdp": "x"}),
        "0t" + json.dumps({"type": "event", "event": {"kind": "browser.event", "what": "x", "detail": {}}}),
        '1t{"type":"bye","x":1}',
        "1tnot json",
        '0t{"type":"candidate","candidate":{"candidate":"","sdpMid":null,"sdpMLineIndex":null}}',
        "0c",
        "2jroom",
        "2t" + json.dumps({"type": "answer", "sdp": "y"}),
    ]
    write("signaling", "crowd", "\n".join(crowd) + "\n")
    server = [
        "0s" + json.dumps({"type": "joined", "room": "r1", "peers": 1, "iceServers": [
            {"urls": ["turn:127.0.0.1:3478?transport=udp"], "username": "1700000000:u",
             "credential": "c2VjcmV0"}]}),
        "0s" + json.dumps({"type": "error", "code": "room-full", "message": "pick another"}),
        "0s" + json.dumps({"type": "peer-joined"}),
        "0s" + json.dumps({"type": "event", "event": {"t": 1.5, "kind": "note", "level": "info"}}),
    ]
    write("signaling", "server", "\n".join(server) + "\n")
    # Finding 3 (docs/results/fuzz.md): a number the default float parser rounded wrongly.
    write("signaling", "float", '0s{"type": "event", "event": {"t": '
          '6666666660000000002985325346928896675.52, "kind": "note"}}\n')
    names = ["0j", "1ja b", "2j" + "x" * 65, "3j\u00e9", "4j" + "y" * 64, "4t{\"type\":\"bye\"}"]
    write("signaling", "names", "\n".join(names) + "\n")


# --- scenario: scenario files ---------------------------------------------------------------------

def scenario():
    reset("scenario")
    files = sorted((ROOT / "scenarios").glob("*.toml")) + sorted(
        (ROOT / "scenarios" / "presets").glob("*.toml"))
    for f in files:
        if f.name == "Cargo.toml":
            continue
        write("scenario", f.stem, f.read_text())
    base = (ROOT / "scenarios" / "loss-5.toml").read_text()
    write("scenario", "sweep-loss", base.rstrip("\n") + "\n#set loss=12.5")
    write("scenario", "sweep-codec", base.rstrip("\n") + "\n#set codec=vp8")


# --- event_log: lines of events.jsonl ------------------------------------------------------------

def event_log():
    reset("event_log")
    lines = []
    for f in sorted((ROOT / "report" / "tests" / "fixtures").glob("*.jsonl")):
        lines += [line for line in f.read_text().splitlines() if line.strip()]
    first = {}
    for line in lines:
        kind = json.loads(line)["kind"]
        first.setdefault(kind, []).append(line)
    start = first["session.start"][0]
    end = first["session.end"][0]
    # Two or three lines of each kind, in time order, between one start and one end.
    middle = []
    for kind, some in first.items():
        if kind not in ("session.start", "session.end"):
            middle += some[:3]
    middle.sort(key=lambda line: json.loads(line)["t"])
    extra = [
        {"t": 1.0, "peer": "lab", "kind": "turn.allocation_created", "client": "127.0.0.1:5000",
         "username": "1700000000:u", "relay": "127.0.0.1:40000", "transport": "udp",
         "lifetime_s": 600},
        {"t": 1.1, "peer": "lab", "kind": "turn.permission", "client": "127.0.0.1:5000",
         "peers": ["127.0.0.1"]},
        {"t": 1.2, "peer": "lab", "kind": "turn.channel_bind", "client": "127.0.0.1:5000",
         "peer_addr": "127.0.0.1:6000", "channel": 16384},
        {"t": 2.0, "peer": "lab", "kind": "turn.bytes", "relay": "127.0.0.1:40000",
         "to_peer_bytes": 1000, "to_peer_packets": 10, "from_peer_bytes": 900,
         "from_peer_packets": 9},
        {"t": 2.5, "peer": "lab", "kind": "turn.refused", "client": "127.0.0.1:5001",
         "method": "allocate", "code": 486, "reason": "quota", "username": "1700000000:u",
         "peer_addr": None},
        {"t": 3.0, "peer": "lab", "kind": "relay.rtp", "direction": "from_client",
         "ssrc": 305419896, "payload_type": 102, "clock_hz": 90000, "packets": 100,
         "bytes": 100000, "bps": 800000.0, "lost": 1, "loss_pct": 1.0, "jitter_ms": 2.0,
         "repeated": 0, "packets_total": 300, "lost_total": 2},
        {"t": 3.0, "peer": "lab", "kind": "relay.packets", "direction": "from_client",
         "rtcp_packets": 5, "rtcp_bytes": 400, "stun_packets": 2, "dtls_packets": 0,
         "other_packets": 0},
        {"t": 4.0, "peer": "lab", "kind": "turn.allocation_closed", "client": "127.0.0.1:5000",
         "username": "1700000000:u", "relay": "127.0.0.1:40000"},
    ]
    middle += [json.dumps(e) for e in extra]
    half = len(middle) // 2
    write("event_log", "kinds-a", "\n".join([start] + middle[:half] + [end]) + "\n")
    write("event_log", "kinds-b", "\n".join([start] + middle[half:] + [end]) + "\n")
    # Damage: a cut last line, a garbage line, no end, another schema.
    write("event_log", "cut", "\n".join([start] + middle[:10]) + "\n" + middle[10][:40])
    write("event_log", "garbage", "\n".join([start, "not json", middle[0], "{}", end]) + "\n")
    write("event_log", "schema", start.replace("rtclab.events/1", "rtclab.events/0") + "\n")


# --- rtp: records of <control><length u16><datagram> ---------------------------------------------

MEDIA = 0x12345678


def rtp(seq, ts, ssrc=MEDIA, pt=102, marker=False, exts=(), payload=b"\x00" * 100):
    header = bytes([0x80 | (0x10 if exts else 0), (0x80 if marker else 0) | pt])
    header += struct.pack("!HII", seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    if exts:
        body = b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in exts)
        body += b"\x00" * (-len(body) % 4)
        header += struct.pack("!HH", 0xBEDE, len(body) // 4) + body
    return header + payload


def rtcp(pt, count, body):
    length = (4 + len(body)) // 4 - 1
    return bytes([0x80 | count, pt]) + struct.pack("!H", length) + body


def record(control, datagram):
    return bytes([control]) + struct.pack("!H", len(datagram)) + datagram


def rtp_corpus():
    reset("rtp")
    stream = b""
    for i in range(12):
        exts = [(5, struct.pack("!H", i))]
        if i % 3 == 0:  # the first packet of each frame carries the capture time and the tag
            ntp = ((3_900_000_000 + i) << 32) | 0x8000_0000
            exts += [(3, struct.pack("!Q", ntp)), (4, struct.pack("!IHHB", i // 3, 1280, 720, 30))]
        stream += record(3 | (0x40 if i == 6 else 0) | (0x80 if i % 3 == 2 else 0),
                         rtp(i, 90_000 + (i // 3) * 3000, marker=i % 3 == 2, exts=exts,
                             payload=bytes(range(i, i + 120))))
    write("rtp", "frames", stream)
    block = struct.pack("!IBBHIIII", MEDIA, 3, 0, 0, 1000, 12, 0x1234, 5)
    rr = rtcp(201, 1, struct.pack("!I", 0xCAFE) + block[:4] + bytes([3, 0, 0, 2]) + block[8:])
    sr = rtcp(200, 1, struct.pack("!IIIIII", MEDIA, 3_900_000_000, 0, 90_000, 10, 1200)
              + block[:4] + bytes([0, 0, 0, 0]) + block[8:])
    nack = rtcp(205, 1, struct.pack("!IIHH", 0xCAFE, MEDIA, 7, 0b101))
    pli = rtcp(206, 1, struct.pack("!II", 0xCAFE, MEDIA))
    fir = rtcp(206, 4, struct.pack("!IIIB3s", 0xCAFE, 0, MEDIA, 1, b"\x00" * 3))
    remb = rtcp(206, 15, struct.pack("!II4sBBHI", 0xCAFE, 0, b"REMB", 1, 0x10, 0x0000, MEDIA))
    twcc = rtcp(205, 15, struct.pack("!IIHHIBBHH", 0xCAFE, MEDIA, 0, 2, 0x000001, 0, 0x20, 2, 0)
                + bytes([4, 4]) + b"\x00\x00")
    sdes = rtcp(202, 1, struct.pack("!I", 0xCAFE) + bytes([1, 4]) + b"abcd" + b"\x00\x00")
    bye = rtcp(203, 1, struct.pack("!I", 0xCAFE))
    write("rtp", "rtcp", b"".join(record(1, p) for p in [rr, sr, nack, pli, fir, remb, twcc, sdes, bye]))
    write("rtp", "compound", record(2, sr + sdes) + record(2, rr + remb + nack))
    stun = struct.pack("!HHI12s", 1, 0, 0x2112A442, b"abcdefghijkl")
    dtls = bytes([22, 0xFE, 0xFD]) + b"\x00" * 10
    write("rtp", "mixed", record(1, stun) + record(1, dtls) + record(1, b"\xff\x00garbage")
          + record(0x41, rtp(1, 1, ssrc=0xAAAA, pt=111, payload=b"opus")))


# --- turn_guard: records of <op><length u16><bytes> ----------------------------------------------

def stun_message(msg_type, tid, attrs, fingerprint=True):
    body = b""
    for typ, value in attrs:
        body += struct.pack("!HH", typ, len(value)) + value + b"\x00" * (-len(value) % 4)
    length = len(body) + (8 if fingerprint else 0)
    msg = struct.pack("!HHI", msg_type, length, 0x2112A442) + tid + body
    if fingerprint:
        crc = (zlib.crc32(msg) ^ 0x5354554E) & 0xFFFFFFFF
        msg += struct.pack("!HHI", 0x8028, 4, crc)
    return msg


def turn_corpus():
    reset("turn_guard")
    # Structured requests (op 2) and responses (op 3); the bytes are the fields described in
    # fuzz_targets/turn_guard.rs: method, class, transaction, peers, peer indexes, channel, user,
    # credentials, flags, integrity.
    allocate_signed = bytes([0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1])
    allocate_ok = bytes([0, 0, 1, 0x9C, 0x40, 10])
    second_allocate = bytes([0, 0, 2, 0, 0, 0, 0, 0, 0, 1, 0, 1])
    permission_private = bytes([2, 0, 3, 2, 1, 0, 0, 0, 0, 1, 0, 1])
    permission_ok = bytes([2, 0, 3])
    bind_listener = bytes([3, 0, 4, 1, 5, 0, 0, 7, 0, 1, 4, 1])
    send_loopback = bytes([4, 1, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    wrong_password = bytes([0, 0, 6, 0, 0, 0, 0, 0, 1, 1, 0, 2])
    unauthorized = bytes([0, 1, 6, 0x65]) + b"Unauthorized"
    refresh_expired = bytes([1, 0, 7, 0, 0, 0, 0, 0, 2, 2, 0, 1])
    sequence = [
        record(2, allocate_signed), record(3 | 0x40, allocate_ok),
        record(2, second_allocate), record(2, permission_private), record(3, permission_ok),
        record(2, bind_listener), record(2, send_loopback), record(2, wrong_password),
        record(3, unauthorized), record(2, refresh_expired),
    ]
    write("turn_guard", "session", b"".join(sequence))
    # Raw messages (op 0 from a client, op 1 from the server), as they are on the wire.
    binding = stun_message(0x0001, b"\x01" * 12, [])
    requested_transport = (0x0019, bytes([17, 0, 0, 0]))
    allocate = stun_message(0x0003, b"\x02" * 12, [requested_transport])
    xor_peer = (0x0012, struct.pack("!BBH4s", 0, 1, 5000 ^ 0x2112,
                                    bytes(a ^ b for a, b in zip([127, 0, 0, 1], b"\x21\x12\xa4\x42"))))
    permission = stun_message(0x0008, b"\x03" * 12, [xor_peer], fingerprint=False)
    error_401 = stun_message(0x0113, b"\x02" * 12,
                             [(0x0009, bytes([0, 0, 4, 1]) + b"Unauthorized"),
                              (0x0014, b"rtclab"), (0x0015, b"nonce")])
    channel_data = struct.pack("!HH", 0x4000, 4) + b"data"
    write("turn_guard", "raw", record(0, binding) + record(0, allocate) + record(1, error_401)
          + record(0, permission) + record(0, channel_data))


if __name__ == "__main__":
    signaling()
    scenario()
    event_log()
    rtp_corpus()
    turn_corpus()
    for folder in sorted(CORPUS.iterdir()):
        files = list(folder.iterdir())
        print(f"{folder.name}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")
