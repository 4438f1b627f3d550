"""Channel framing: round trips in process and over TCP, counted bytes and rounds, and a
specific error for every kind of broken or hostile peer."""
from __future__ import annotations

import socket
import struct
import threading

import pytest

from pyimgenc.twinserver.channel import MAGIC, VERSION, ChannelError, TcpChannel, in_process_pair


def _echo(ch, n):
    for _ in range(n):
        t, i, body = ch.recv()
        ch.send(t + 1, body[::-1], msg_id=i)


def test_in_process_round_trips_and_counts():
    a, b = in_process_pair(timeout_s=5)
    th = threading.Thread(target=_echo, args=(b, 3))
    th.start()
    for body in (b"", b"x", bytes(range(256)) * 100):
        assert a.request(7, body, reply_type=8) == body[::-1]
    th.join()
    assert a.stats.rounds == 3 and a.stats.frames_sent == 3 and b.stats.frames_received == 3
    assert a.stats.bytes_sent == b.stats.bytes_received == 3 * 14 + 1 + 25600


def test_tcp_round_trip_and_hostile_peers():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]

    def serve():
        for _ in range(2):
            conn, _ = srv.accept()
            ch = TcpChannel(conn, timeout_s=5)
            try:
                _echo(ch, 1)
            except ChannelError:
                pass
            ch.close()

    th = threading.Thread(target=serve)
    th.start()
    c = TcpChannel.connect("127.0.0.1", port, timeout_s=5)
    assert c.request(1, b"hello", 2) == b"olleh"
    c.close()
    # a garbage client: the server side raises ChannelError and keeps going (thread ends cleanly)
    raw = socket.create_connection(("127.0.0.1", port))
    raw.sendall(b"GET / HTTP/1.1\r\n\r\n")
    raw.close()
    th.join(timeout=10)
    assert not th.is_alive()
    srv.close()
    with pytest.raises(ChannelError, match="unreachable"):
        TcpChannel.connect("127.0.0.1", port, timeout_s=1)


@pytest.mark.parametrize("frame, reason", [
    (b"XXXX" + bytes(10), "bad_magic"),
    (MAGIC + bytes([9]) + bytes(9), "bad_version"),
    (struct.pack(">4sBBII", MAGIC, VERSION, 3, 1, 0), "unexpected_type"),
    (struct.pack(">4sBBII", MAGIC, VERSION, 5, 99, 0), "unexpected_id"),
    (struct.pack(">4sBBII", MAGIC, VERSION, 5, 1, 1 << 31), "oversized"),
])
def test_bad_frames_have_specific_reasons(frame, reason):
    a, b = in_process_pair(timeout_s=2, max_body=1 << 20)
    b._write(frame)
    with pytest.raises(ChannelError) as ei:
        a.recv(expect_type=5, expect_id=1)
    assert ei.value.reason == reason
    with pytest.raises(ChannelError, match="closed"):
        a.recv()  # unusable afterwards


def test_truncated_frame_closed_peer_and_timeout():
    a, b = in_process_pair(timeout_s=0.5)
    b._write(struct.pack(">4sBBII", MAGIC, VERSION, 5, 1, 100) + b"short")
    b.close()
    with pytest.raises(ChannelError, match="closed"):
        a.recv()
    c, _d = in_process_pair(timeout_s=0.2)
    with pytest.raises(ChannelError, match="timeout"):
        c.recv()
    with pytest.raises(ValueError, match="type"):
        c.send(0, b"")
