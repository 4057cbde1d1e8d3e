#!/usr/bin/python3
"""lt_peer.py with libtorrent's own peer log: what libtorrent says happened on each connection.

    LT_WIRELOG=FILE lt_peer_log.py seed|leech TORRENT DIR PORT [HOST:PORT ...]

Runs lt_peer.py (same arguments, same environment knobs) with libtorrent's peer_log alerts on, and appends
one JSON line per alert to FILE: {"t", "ip", "port", "msg"}, where msg is libtorrent's own log line, e.g.
"<== EXTENSIONS [ ... ] ext: FAST extension" or "==> HAVE_ALL". The driver itself is not changed: its
session class is replaced by one that copies the peer log before handing the alerts on.
"""
import json
import os
import sys
import time

import libtorrent as lt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lt_peer  # noqa: E402


class LoggingSession(lt.session):
    def __init__(self, settings):
        settings = dict(settings)
        settings["alert_mask"] = settings.get("alert_mask", 0) | lt.alert.category_t.peer_log_notification
        super().__init__(settings)
        self._log = open(os.environ["LT_WIRELOG"], "a")
        self._t0 = time.monotonic()

    def pop_alerts(self):
        alerts = super().pop_alerts()
        for a in alerts:
            if isinstance(a, lt.peer_log_alert):
                ip, port = a.endpoint
                self._log.write(json.dumps({
                    "t": round(time.monotonic() - self._t0, 3), "ip": ip, "port": port,
                    "msg": a.message(),
                }) + "\n")
        self._log.flush()
        return alerts


lt.session = LoggingSession

if __name__ == "__main__":
    sys.exit(lt_peer.main())
