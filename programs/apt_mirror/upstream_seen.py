"""What an apt mirror update would see of its upstream, as one hash (apt mirror, airgap-infra).

    python3 - URL DIST KEYRING SETTINGS...

Hashes the upstream's InRelease (or Release: either lists every index's checksum), the keyring
and the repository's settings, and prints the hex digest; exits 1 when neither file is there.
"""

import hashlib
import os
import sys
import urllib.error
import urllib.request

url, dist, keyring, *settings = sys.argv[1:]
# A served tree's port changes every run: its identity is its path (AIRGAP_SOURCE).
digest = hashlib.sha256("\0".join([os.environ.get("AIRGAP_SOURCE") or url, dist, *settings]).encode())
with open(keyring, "rb") as keys:
    digest.update(keys.read())
base = f"{url.rstrip('/')}/{dist}" if dist.endswith("/") else f"{url.rstrip('/')}/dists/{dist}/"
for index in ("InRelease", "Release"):
    try:
        with urllib.request.urlopen(base + index, timeout=60) as response:
            digest.update(response.read())
            break
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise
else:
    sys.exit(1)
print(digest.hexdigest())
