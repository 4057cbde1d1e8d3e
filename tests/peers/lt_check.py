#!/usr/bin/python3
"""Loads a torrent into libtorrent (python3-libtorrent), checks the data under SAVE_PATH, and prints what it found.

    lt_check.py TORRENT SAVE_PATH

Prints one JSON object: {"v1": hex or null, "v2": hex or null, "pieces": n, "have": pieces that passed,
"files": [[path, size, pad], ...]}. Exits 1 if the torrent does not load or the check does not finish in 60 s.
"""
import json
import sys
import time

import libtorrent as lt

from _lt_alerts import alert_waiter

torrent, save_path = sys.argv[1:3]
ti = lt.torrent_info(torrent)
ses = lt.session({
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
})
wait_for_alerts = alert_waiter(ses)
atp = lt.add_torrent_params()
atp.ti = ti
atp.save_path = save_path
atp.flags |= lt.torrent_flags.paused
# without resume data, adding the torrent checks every file that exists
handle = ses.add_torrent(atp)
deadline = time.monotonic() + 60
checked = False
while not checked and time.monotonic() < deadline:
    wait_for_alerts(0.1)
    for alert in ses.pop_alerts():
        if isinstance(alert, lt.torrent_checked_alert):
            checked = True
        elif isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
            print(alert.message(), file=sys.stderr)
if not checked:
    sys.exit(1)
st = handle.status()
fs = ti.files()
hashes = ti.info_hashes()
print(json.dumps({
    "v1": str(hashes.v1) if hashes.has_v1() else None,
    "v2": str(hashes.v2) if hashes.has_v2() else None,
    "pieces": ti.num_pieces(),
    "have": sum(1 for p in st.pieces if p),
    "files": [[fs.file_path(i), fs.file_size(i), bool(fs.file_flags(i) & 1)] for i in range(fs.num_files())],
}))
