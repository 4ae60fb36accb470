#!/usr/bin/env python3
"""A link-speed knob for the pull benches (bench/pull_compare.sh): a TCP forwarder on loopback
that passes every connection to an upstream port through one shared token bucket per direction,
so all connections together see a link of RATE bits per second (a 50 ms burst at most), as a
host behind a slow link would. Loopback only: it listens on 127.0.0.1 and forwards to 127.0.0.1.
With COUNT_FILE it also counts the bytes sent to clients (the bytes a pull fetched on the wire,
HTTP headers included) and writes the running total there each time a connection closes.
Rests on Python's asyncio only.
Usage: rate_limit_proxy.py UPSTREAM_PORT RATE_BITS_PER_SECOND PORT_FILE [COUNT_FILE]
(the port it listens on is written to PORT_FILE once it accepts connections)."""
import asyncio
import sys
import time

READ_BYTES = 64 * 1024


class Bucket:
    """One direction of the link: senders queue on the lock, so the rate is shared by all."""

    def __init__(self, bytes_per_second: float):
        self.rate = bytes_per_second
        self.burst = bytes_per_second * 0.05
        self.tokens = 0.0
        self.last = time.monotonic()
        self.lock = asyncio.Lock()
        self.total = 0

    async def take(self, n: int) -> None:
        async with self.lock:
            self.total += n
            now = time.monotonic()
            self.tokens = min(self.tokens + (now - self.last) * self.rate, self.burst)
            self.last = now
            self.tokens -= n
            if self.tokens < 0:
                await asyncio.sleep(-self.tokens / self.rate)


async def pipe(reader, writer, bucket: Bucket, count_file=None) -> None:
    try:
        while True:
            data = await reader.read(READ_BYTES)
            if not data:
                break
            await bucket.take(len(data))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:  # already closed by the other side
            pass
        if count_file:
            with open(count_file, "w", encoding="ascii") as counted:
                counted.write(str(bucket.total))


async def main() -> None:
    upstream_port = int(sys.argv[1])
    rate = float(sys.argv[2]) / 8
    down, up = Bucket(rate), Bucket(rate)
    count_file = sys.argv[4] if len(sys.argv) > 4 else None

    async def serve(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, up_writer, up),
                             pipe(up_reader, client_writer, down, count_file))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    with open(sys.argv[3], "w", encoding="ascii") as port_file:
        port_file.write(str(server.sockets[0].getsockname()[1]))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
