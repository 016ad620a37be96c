#!/usr/bin/env python3
"""A parley client built on the websockets library: not parley's own code.

usage: chat.py URL [SUBPROTOCOL]

Connects to URL (asking for SUBPROTOCOL, e.g. parley.v1, when given), then
  - prints "subprotocol: NAME" ("subprotocol: none" without one),
  - sends each line read from stdin as one text frame,
  - prints each frame received as "< " + the frame as a JSON string, so that
    every frame is one line whatever it holds,
  - closes with 1000 when stdin ends and prints "closed: CODE".
It exits 0 after a clean close, 1 on any error, 2 when websockets is missing.
"""

import asyncio
import json
import sys

try:
    import websockets
except ImportError:
    print("websockets is not installed: apt-get install -y python3-websockets", file=sys.stderr)
    sys.exit(2)


def say(line):
    print(line, flush=True)


async def receive(ws):
    try:
        async for frame in ws:
            if isinstance(frame, bytes):
                say("< binary " + frame.hex())
            else:
                say("< " + json.dumps(frame, ensure_ascii=False))
    except websockets.exceptions.ConnectionClosed:
        pass


async def send_stdin(ws):
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        await ws.send(line.rstrip("\n"))


async def main():
    url = sys.argv[1]
    subprotocols = [sys.argv[2]] if len(sys.argv) > 2 and sys.argv[2] else None
    async with websockets.connect(url, subprotocols=subprotocols) as ws:
        say("subprotocol: " + (ws.subprotocol or "none"))
        reader = asyncio.ensure_future(receive(ws))
        await send_stdin(ws)
        await ws.close(code=1000, reason="bye")
        await reader
        say("closed: %s" % ws.close_code)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # report, then fail
        print("error: %r" % (e,), file=sys.stderr)
        sys.exit(1)
