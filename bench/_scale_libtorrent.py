#!/usr/bin/python3
"""The libtorrent side of bench/scale.ts: one session, every .torrent of a folder added in seed_mode (no hash
check), prints "ready <ms>" once all are seeding and "port <n>", then runs until stdin closes."""
import os, sys, time, select
import libtorrent as lt

tdir, ddir = sys.argv[1], sys.argv[2]
t0 = time.monotonic()
ses = lt.session({
    "listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False, "enable_upnp": False,
    "enable_natpmp": False, "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True, "connections_limit": 2000, "active_seeds": -1,
    "active_limit": -1, "alert_mask": 0,
})
handles = []
for name in sorted(os.listdir(tdir)):
    if not name.endswith(".torrent"):
        continue
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(os.path.join(tdir, name))
    atp.save_path = ddir
    atp.flags |= lt.torrent_flags.seed_mode
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    handles.append(ses.add_torrent(atp))
while True:
    if all(h.status().is_seeding for h in handles):
        break
    time.sleep(0.01)
print(f"ready {(time.monotonic() - t0) * 1000:.0f} {len(handles)} 0", flush=True)
print(f"port {ses.listen_port()}", flush=True)
while True:
    r, _, _ = select.select([sys.stdin], [], [], 1)
    if r and not sys.stdin.read(1):
        break
