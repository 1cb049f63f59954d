"""Serves an imported bundle's archive tree on a loopback port while aptly reads it (apt mirror,
airgap-infra); runs until stopped.

    python3 - TREE PORT_FILE

The port, chosen by the system, is written to PORT_FILE once the server listens (through a
rename, so a reader never sees half of it).
"""

import functools
import http.server
import os
import sys

tree, port_file = sys.argv[1:]


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=tree))
with open(port_file + ".new", "w") as out:
    out.write(str(server.server_address[1]))
os.rename(port_file + ".new", port_file)
server.serve_forever()
