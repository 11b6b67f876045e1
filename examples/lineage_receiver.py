"""A stand-in for a lineage server (Marquez, DataHub...) for the demo: accepts OpenLineage events
on loopback at /api/v1/lineage and appends each to a JSON Lines file.

    python examples/lineage_receiver.py EVENTS.jsonl PORT_FILE
"""

from __future__ import annotations

import http.server
import json
import sys
from pathlib import Path

MAX_EVENT_BYTES = 1 << 20


def main() -> None:
    events, port_file = Path(sys.argv[1]), Path(sys.argv[2])
    events.write_text("")

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            size = int(self.headers.get("Content-Length") or 0)
            if self.path != "/api/v1/lineage" or not 0 < size <= MAX_EVENT_BYTES:
                self.send_response(400)
                self.end_headers()
                return
            event = json.loads(self.rfile.read(size))
            with events.open("a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
