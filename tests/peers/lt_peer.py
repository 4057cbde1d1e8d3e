#!/usr/bin/python3
"""A libtorrent (python3-libtorrent) peer for Seedbed's interop tests.

    lt_peer.py seed|leech TORRENT|MAGNET DIR PORT [HOST:PORT ...]

TORRENT is a .torrent file or, for a leech, a magnet: URI (the metadata, and a v2 torrent's piece layers, are
then fetched from its peers, BEP 9; "metadata" is printed once it is known).

Listens on 127.0.0.1:PORT with DHT, local discovery, UPnP/NAT-PMP and uTP off
and several connections per IP allowed (every test peer is 127.0.0.1). PORT 0
lets the system choose: the port bound is printed first, as "port N". A seed
checks DIR first. Prints "ready" on stdout once seeding / once the torrent is
added (leech), "connected" once it has a first peer, "done" once a leech has every piece (and its writes have
reached the files: a test may compare them at once), then keeps running until
SIGTERM/SIGINT or stdin closes. Dials the HOST:PORT peers given.

Environment knobs (as the lab's driver):
  LT_SETTINGS      JSON of libtorrent settings applied last; "{port}" in a string = PORT. E.g. forced RC4:
                   {"out_enc_policy":0,"in_enc_policy":0,"allowed_enc_level":2}; uTP only:
                   {"enable_outgoing_tcp":false,"enable_incoming_tcp":false,"enable_outgoing_utp":true,
                   "enable_incoming_utp":true}; IPv6 only: {"listen_interfaces":"[::1]:{port}"}
  LT_PEERLOG       a file: every 0.25 s (50 ms while payload moves) one JSON line per connected peer (ip, port, client, rc4,
                   plaintext_encrypted, utp, incoming, extensions, progress, up, down, and source: where
                   libtorrent learnt the address — a list of tracker, dht, pex, lsd, resume_data, incoming):
                   what was used
  LT_UPLOAD_LIMIT  bytes/s, a per-torrent upload cap (session limits skip loopback peers)
  LT_PROFILE       hps = high_performance_seed()
  LT_HASHLOG       a file: one line per BEP 52 hash message libtorrent sent or received (its peer log:
                   "==> HASH_REQUEST ...", "<== HASHES ...", "<== HASH_REJECT ...")
  LT_SAVE_TORRENT  a file: once done, the torrent as libtorrent knows it then (resume data with the info
                   dictionary, written with write_torrent_file: a v2 torrent's piece layers included when
                   libtorrent has them); prints "saved" after writing it, or "save-failed REASON"
"""
import json
import os
import select
import signal
import sys
import time

import libtorrent as lt

from _lt_alerts import alert_waiter


# peer_info.source bits: where libtorrent learnt a peer's address
SOURCES = [("tracker", 1), ("dht", 2), ("pex", 4), ("lsd", 8), ("resume_data", 16), ("incoming", 32)]


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
        "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.status_notification
        | lt.alert.category_t.stats_notification,
    })
    hashlog = os.environ.get("LT_HASHLOG")
    if hashlog:
        settings["alert_mask"] |= lt.alert.category_t.peer_log_notification
    if os.environ.get("LT_SETTINGS"):
        extra = json.loads(os.environ["LT_SETTINGS"])
        settings.update({k: v.replace("{port}", port) if isinstance(v, str) else v for k, v in extra.items()})
    ses = lt.session(settings)
    wait_for_alerts = alert_waiter(ses)
    peerlog = os.environ.get("LT_PEERLOG")
    last_peerlog = 0.0
    last_moved = -1
    t0 = time.monotonic()
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(flag=True))
    if port == "0":
        # the system chose the port: report it before anything else
        while not ses.is_listening() and time.monotonic() - t0 < 30:
            wait_for_alerts(0.1)
            ses.pop_alerts()
        print(f"port {ses.listen_port()}", flush=True)
    magnet = torrent.startswith("magnet:")
    if magnet:
        if role == "seed":
            print("a seed needs a .torrent file", file=sys.stderr, flush=True)
            return 2
        atp = lt.parse_magnet_uri(torrent)
    else:
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(torrent)
    atp.save_path = directory
    handle = ses.add_torrent(atp)
    if os.environ.get("LT_UPLOAD_LIMIT"):
        handle.set_upload_limit(int(os.environ["LT_UPLOAD_LIMIT"]))
    # a seed's files are checked by libtorrent itself (no resume data is given): a force_recheck() on top could
    # start a second check after "ready" was printed, refusing the connections a test then makes
    save_torrent = os.environ.get("LT_SAVE_TORRENT")
    announced_ready = False
    announced_done = False
    flushing = False
    announced_connected = False
    announced_metadata = False
    dialed = False
    deadline = time.monotonic() + float(os.environ.get("LT_PEER_MAX_S", "600"))
    while not stop["flag"] and time.monotonic() < deadline:
        wait_for_alerts(0.05)
        for alert in ses.pop_alerts():
            if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
                print("error", alert.message(), file=sys.stderr, flush=True)
            if flushing and isinstance(alert, lt.session_stats_alert):
                # a piece counts as had once hashed, which may be before its blocks are written: done once no
                # write is pending any more (every piece is in the files)
                v = alert.values
                if v.get("disk.queued_write_bytes", 0) == 0 and v.get("disk.num_write_jobs", 0) == 0:
                    print("done", flush=True)
                    announced_done = True
                    flushing = False
                    if save_torrent:
                        handle.save_resume_data(lt.save_resume_flags_t.save_info_dict)
            if hashlog and isinstance(alert, lt.peer_log_alert) and "HASH" in alert.message():
                with open(hashlog, "a") as f:
                    f.write(alert.message() + "\n")
            if isinstance(alert, lt.save_resume_data_alert) and save_torrent:
                try:
                    data = lt.bencode(lt.write_torrent_file(alert.params))
                    with open(save_torrent, "wb") as f:
                        f.write(data)
                    print("saved", flush=True)
                except Exception as e:  # noqa: BLE001 - reported to the test
                    print("save-failed", str(e).replace("\n", " "), flush=True)
            if isinstance(alert, lt.save_resume_data_failed_alert) and save_torrent:
                print("save-failed", alert.message(), flush=True)
        st = handle.status()
        # every 0.25 s, and every 50 ms while payload moves: a short transfer whose connection closes as soon as
        # both ends are seeds is still listed with its bytes
        moved = st.total_payload_download + st.total_payload_upload
        since = time.monotonic() - last_peerlog
        if peerlog and (since >= 0.25 or (moved != last_moved and since >= 0.05)):
            last_moved = moved
            last_peerlog = time.monotonic()
            with open(peerlog, "a") as f:
                for p in handle.get_peer_info():
                    fl = p.flags
                    f.write(json.dumps({
                        "t": round(last_peerlog - t0, 2), "ip": p.ip[0], "port": p.ip[1],
                        "client": p.client if isinstance(p.client, str) else p.client.decode("utf-8", "replace"),
                        "rc4": bool(fl & lt.peer_info.rc4_encrypted),
                        "plaintext_encrypted": bool(fl & lt.peer_info.plaintext_encrypted),
                        # peer_flags_t utp_socket is bit 17 (not exported by the 2.0 bindings)
                        "utp": bool(fl & getattr(lt.peer_info, "utp_socket", 1 << 17)),
                        "incoming": not bool(fl & lt.peer_info.outgoing_connection),
                        "extensions": bool(fl & lt.peer_info.supports_extensions),
                        "progress": round(p.progress, 4),
                        "up": p.total_upload, "down": p.total_download,
                        "source": [name for name, bit in SOURCES if p.source & bit],
                    }) + "\n")
        checking = st.state in (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)
        if not dialed and not checking:
            for host, p in peers:
                handle.connect_peer((host.strip("[]"), int(p)))
            dialed = True
        if magnet and not announced_metadata and st.has_metadata:
            print("metadata", flush=True)
            announced_metadata = True
        complete = st.is_seeding or (st.is_finished and st.progress >= 1.0)
        if not announced_ready and not checking and (role == "leech" or complete):
            print("ready", flush=True)
            announced_ready = True
        if not announced_connected and st.num_peers > 0:
            print("connected", flush=True)
            announced_connected = True
        if role == "leech" and complete and not announced_done:
            ses.post_session_stats()
            flushing = True
        r, _, _ = select.select([sys.stdin], [], [], 0)
        if r and not sys.stdin.read(1):
            break
    ses.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
