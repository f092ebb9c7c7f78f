"""A TCP proxy a test can cut: every connection through it ends at once, as when a network
between a workbench and its scheduler drops, while it keeps accepting new ones. Like a reverse
proxy, it names the scheduler in each request's Host header, which the scheduler checks."""

from __future__ import annotations

import socket
import threading


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``host:target_port``; :meth:`cut` ends every connection
    through it, :meth:`close` stops it."""

    def __init__(self, host: str, target_port: int) -> None:
        self._target = (host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.connections = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                inbound, _ = self._listener.accept()
            except OSError:
                return
            try:
                outbound = socket.create_connection(self._target)
            except OSError:
                inbound.close()
                continue
            with self._lock:
                self.connections += 1
                self._open.update((inbound, outbound))
            host = f"Host: {self._target[0]}:{self._target[1]}".encode()
            mine = f"Host: 127.0.0.1:{self.port}".encode()
            for a, b, rewrite in ((inbound, outbound, (mine, host)), (outbound, inbound, None)):
                threading.Thread(target=self._pipe, args=(a, b, rewrite), daemon=True).start()

    def _pipe(
        self, source: socket.socket, sink: socket.socket, rewrite: tuple[bytes, bytes] | None
    ) -> None:
        try:
            while data := source.recv(65536):
                if rewrite is not None:
                    # A request's head comes in its first segment; the client sends it whole.
                    data = data.replace(*rewrite)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(source)
            self._drop(sink)

    def _drop(self, s: socket.socket) -> None:
        with self._lock:
            self._open.discard(s)
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def cut(self) -> None:
        """Ends every connection through the proxy now."""
        with self._lock:
            sockets = list(self._open)
        for s in sockets:
            self._drop(s)

    def close(self) -> None:
        try:
            # Wakes the accepting thread, which a close alone leaves blocked on Linux.
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self.cut()
