#!/usr/bin/python3
"""A libtorrent (python3-libtorrent) seeder that announces itself in the DHT, for Seedbed's DHT interop test.

    lt_dht.py TORRENT DIR PORT BOOTSTRAP_HOST:PORT

Listens on 127.0.0.1:PORT (TCP for peers, UDP for its DHT node; PORT 0 lets the system choose, and the port
bound is printed first as "port N") with the DHT on and its address restrictions
off (every node of the test is 127.0.0.1), bootstraps from the given node only, checks DIR, prints "ready"
once seeding, then announces the torrent to the DHT every two seconds until SIGTERM/SIGINT or stdin closes.
"""
import select
import signal
import sys
import time

import libtorrent as lt

from _lt_alerts import alert_waiter


def main() -> int:
    torrent, directory, port, bootstrap = sys.argv[1:5]
    settings = {
        "listen_interfaces": f"127.0.0.1:{port}",
        "enable_dht": True,
        "dht_bootstrap_nodes": bootstrap,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_enforce_node_id": False,
        "dht_prefer_verified_node_ids": False,
        "dht_ignore_dark_internet": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.status_notification,
    }
    ses = lt.session(settings)
    wait_for_alerts = alert_waiter(ses)
    if port == "0":
        t0 = time.monotonic()
        while not ses.is_listening() and time.monotonic() - t0 < 30:
            wait_for_alerts(0.1)
            ses.pop_alerts()
        print(f"port {ses.listen_port()}", flush=True)
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(flag=True))
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = directory
    handle = ses.add_torrent(atp)
    handle.force_recheck()
    ready = False
    last_announce = 0.0
    deadline = time.monotonic() + 300
    while not stop["flag"] and time.monotonic() < deadline:
        wait_for_alerts(0.05)
        for alert in ses.pop_alerts():
            if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
                print("error", alert.message(), file=sys.stderr, flush=True)
        st = handle.status()
        if not ready and st.is_seeding:
            print("ready", flush=True)
            ready = True
        if ready and time.monotonic() - last_announce > 2:
            handle.force_dht_announce()
            last_announce = time.monotonic()
        r, _, _ = select.select([sys.stdin], [], [], 0)
        if r and not sys.stdin.read(1):
            break
    ses.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
