"""Waiting for libtorrent's alerts from Python, shared by the lt_*.py peers."""
import os
import select


def alert_waiter(ses):
    """A function that waits up to a timeout (s) for alerts to pop, without wait_for_alert(): the binding turns
    the alert that call returns into a Python object, and that alert lives in a queue libtorrent's network thread
    may grow (moving its alerts) meanwhile, so under load and with many alerts (a peer log) the conversion read
    freed memory and the process died of SIGSEGV. libtorrent writes a byte to a pipe whenever alerts start
    waiting instead (set_alert_fd)."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    ses.set_alert_fd(w)

    def wait(timeout: float) -> None:
        if select.select([r], [], [], timeout)[0]:
            try:
                while os.read(r, 4096):
                    pass
            except BlockingIOError:
                pass

    return wait
