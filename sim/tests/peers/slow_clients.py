"""Holds N idle, half-sent HTTP requests against an API from 127.0.0.1, then times what other
clients (from 127.0.0.2) get. The figures in docs/operations.md ("HTTP servers under slow or
greedy clients") come from it, through slow_clients_demo.sh.

python3 slow_clients.py HOST:PORT [ADMIN_HOST:PORT] [N]
Prints: how many connections were opened and are still held, and for 5 fresh requests to
GET /api/v1/ (and /metrics on the admin port): status and seconds, or the error, with a 15 s cap.
"""
import socket, sys, time

api = sys.argv[1]
admin = sys.argv[2] if len(sys.argv) > 2 else None
n = int(sys.argv[3]) if len(sys.argv) > 3 else 1100

def addr(s):
    h, p = s.rsplit(":", 1)
    return (h, int(p))

opened_at = time.monotonic()
held = []
refused = 0
for i in range(n):
    try:
        s = socket.create_connection(addr(api), timeout=5)
        s.sendall(b"GET /api/v1/ HTTP/1.1\r\nHost: x\r\n")  # never finished
        held.append(s)
    except OSError:
        refused += 1
print(f"opened {len(held)} half-sent requests ({refused} not opened)")

# The probes come from another address (127.0.0.2): the greedy client is 127.0.0.1.
PROBE_FROM = ("127.0.0.2", 0)

def timed(target, path):
    t = time.monotonic()
    try:
        s = socket.create_connection(addr(target), timeout=15, source_address=PROBE_FROM)
        s.settimeout(15)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        first = s.recv(64)
        s.close()
        status = first.split(b" ")[1].decode() if first.startswith(b"HTTP/") else f"closed ({first!r})"
        return f"{status} in {time.monotonic() - t:.3f} s"
    except OSError as e:
        return f"{type(e).__name__} after {time.monotonic() - t:.3f} s"

for i in range(5):
    line = f"  API /api/v1/: {timed(api, '/api/v1/')}"
    if admin:
        line += f"   admin /metrics: {timed(admin, '/metrics')}"
    print(line)
    time.sleep(1)

def still_held():
    alive = 0
    for s in held:
        try:
            s.setblocking(False)
            if s.recv(1) != b"":
                alive += 1
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive

print(f"after the probes ({time.monotonic() - opened_at:.0f} s after the first was opened), {still_held()} of {len(held)} half-sent requests still held open by the server")
time.sleep(8)
print(f"8 s later, {still_held()} of {len(held)} still held")
