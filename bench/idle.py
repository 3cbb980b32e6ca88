"""Idle keep-alive connections for bench/run: werklabd's memory with many clients that wait.

    /usr/bin/python3 bench/idle.py PORT PATH KEY COUNT PID

Opens COUNT connections to werklabd on 127.0.0.1:PORT, sends one GET PATH (HTTP/1.1, keep-alive,
with the bearer KEY) on each, reads each answer (which must be 200 and keep the connection), and
leaves them idle. Then it reads werklabd's VmRSS (/proc/PID/status), checks that the
connections are all still open, and waits for werklabd to close them at its idle timeout.
Prints one line, "name=value" pairs:

    before_kb   VmRSS before the first connection
    idle_kb     VmRSS one second after the last answer, with the connections idle
    open        connections still open when idle_kb was read (COUNT when all stayed)
    closed_kb   VmRSS once werklabd has closed them all (idle timeout), or after 30 s
    closed      connections werklabd had closed by then
    seconds     how long after the last answer it had closed them

Connections come from 127.0.0.2, 127.0.0.3, … (all of 127/8 is loopback) with at most 250 per
address, so that werklabd's per-address limit (512 by default) does not close the oldest ones:
1,000 idle clients of a server are many addresses, not one. Standard library only (Debian's
python3); exits 1 with a reason on stderr when a connection could not be opened or answered.
"""

import selectors
import socket
import sys
import time

PER_ADDRESS = 250


def vm_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS for werklabd")


def answer_complete(data):
    """The status and whether the whole answer is in data (Content-Length), or None."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    if len(body) < length:
        return None
    return status, close


def main():
    port, path, key, count, pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Authorization: Bearer {key}\r\nAccept: application/json\r\n\r\n").encode()
    before = vm_rss(pid)
    conns = []
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((f"127.0.0.{2 + i // PER_ADDRESS}", 0))
        s.connect(("127.0.0.1", int(port)))
        s.sendall(request)
        conns.append(s)
    sel = selectors.DefaultSelector()
    received = {}
    for s in conns:
        s.setblocking(False)
        received[s] = b""
        sel.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + 30
    pending = len(conns)
    while pending:
        if time.monotonic() > deadline:
            raise SystemExit(f"{pending} of {count} requests unanswered after 30 s")
        for k, _ in sel.select(timeout=1):
            chunk = k.fileobj.recv(65536)
            if not chunk:
                raise SystemExit("werklabd closed a connection before answering")
            received[k.fileobj] += chunk
            done = answer_complete(received[k.fileobj])
            if done:
                status, close = done
                if status != 200 or close:
                    raise SystemExit(f"GET {path} answered {status}" + (", closing" if close else ""))
                sel.unregister(k.fileobj)
                pending -= 1
    answered = time.monotonic()
    time.sleep(1)
    idle = vm_rss(pid)
    # A connection werklabd has closed reads as ready (end of file); an open idle one does not.
    for s in conns:
        sel.register(s, selectors.EVENT_READ)
    open_count = count - len(sel.select(timeout=0))
    closed = 0
    while closed < count and time.monotonic() < answered + 30:
        for k, _ in sel.select(timeout=1):
            try:
                chunk = k.fileobj.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                sel.unregister(k.fileobj)
                closed += 1
    seconds = time.monotonic() - answered
    time.sleep(0.5)
    after = vm_rss(pid)
    for s in conns:
        s.close()
    print(f"before_kb={before} idle_kb={idle} open={open_count} closed_kb={after} closed={closed} "
          f"seconds={seconds:.1f}")


if __name__ == "__main__":
    main()
