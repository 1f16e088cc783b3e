"""A TCP relay the tests can cut: a network link between a process and a service."""

from __future__ import annotations

import asyncio
import threading


class Relay:
    """Listen on `listen_host` (a free port) and forward every connection to `target`.

    `cut()` drops every open connection and refuses new ones, as when the service restarts
    or the network between goes; `restore()` lets connections through again."""

    def __init__(self, listen_host: str, target_host: str, target_port: int) -> None:
        self.listen_host, self.target = listen_host, (target_host, target_port)
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.down = False
        self._open: set[asyncio.StreamWriter] = set()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        async def handle(reader, writer):
            if self.down:
                writer.transport.abort()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.close()
                return
            self._open.update((writer, up_writer))
            try:
                await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
            finally:
                self._open.difference_update((writer, up_writer))

        self.server = self.loop.run_until_complete(
            asyncio.start_server(handle, self.listen_host, 0))
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    def _call(self, fn) -> None:
        done = threading.Event()

        def run():
            fn()
            done.set()

        self.loop.call_soon_threadsafe(run)
        assert done.wait(10)

    def cut(self) -> None:
        def drop():
            self.down = True
            for writer in list(self._open):
                writer.transport.abort()
            self._open.clear()

        self._call(drop)

    def restore(self) -> None:
        def up():
            self.down = False

        self._call(up)

    def stop(self) -> None:
        """Close every connection and end the relay's thread and loop."""

        async def shutdown():
            self.server.close()
            for writer in list(self._open):
                writer.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
