#!/usr/bin/python3
"""A libtorrent (python3-libtorrent) peer for Seedbed's interop tests.

    lt_peer.py seed|leech TORRENT DIR PORT [HOST:PORT ...]

Listens on 127.0.0.1:PORT with DHT, local discovery, UPnP/NAT-PMP and uTP off
and several connections per IP allowed (every test peer is 127.0.0.1). A seed
checks DIR first. Prints "ready" on stdout once seeding / once the torrent is
added (leech), "connected" once it has a first peer, "done" once a leech has every piece, then keeps running until
SIGTERM/SIGINT or stdin closes. Dials the HOST:PORT peers given.
"""
import os
import select
import signal
import sys
import time

import libtorrent as lt


def main() -> int:
    role, torrent, directory, port = sys.argv[1:5]
    peers = [p.rsplit(":", 1) for p in sys.argv[5:]]
    # LT_PROFILE=hps: libtorrent's high_performance_seed() preset (bigger buffers, deeper queues)
    settings = lt.high_performance_seed() if os.environ.get("LT_PROFILE") == "hps" else {}
    settings.update({
        "listen_interfaces": f"127.0.0.1:{port}",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "min_reconnect_time": 1,
        "stop_tracker_timeout": 1,
        "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.status_notification,
    })
    ses = lt.session(settings)
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(flag=True))
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = directory
    handle = ses.add_torrent(atp)
    if role == "seed":
        handle.force_recheck()
    announced_ready = False
    announced_done = False
    announced_connected = False
    dialed = False
    deadline = time.monotonic() + float(os.environ.get("LT_PEER_MAX_S", "600"))
    while not stop["flag"] and time.monotonic() < deadline:
        ses.wait_for_alert(50)
        for alert in ses.pop_alerts():
            if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
                print("error", alert.message(), file=sys.stderr, flush=True)
        st = handle.status()
        checking = st.state in (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)
        if not dialed and not checking:
            for host, p in peers:
                handle.connect_peer((host.strip("[]"), int(p)))
            dialed = True
        complete = st.is_seeding or (st.is_finished and st.progress >= 1.0)
        if not announced_ready and not checking and (role == "leech" or complete):
            print("ready", flush=True)
            announced_ready = True
        if not announced_connected and st.num_peers > 0:
            print("connected", flush=True)
            announced_connected = True
        if role == "leech" and complete and not announced_done:
            print("done", flush=True)
            announced_done = True
        r, _, _ = select.select([sys.stdin], [], [], 0)
        if r and not sys.stdin.read(1):
            break
    ses.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
