"""The JSON report of one repository's update (apt mirror, airgap-infra), printed as one line.

    python3 - NAME STATUS PREVIOUS CURRENT DIFF_FILE

PREVIOUS and CURRENT are the published snapshots before and after (space-separated); DIFF_FILE
holds `aptly snapshot diff` output, whose `+`, `-` and `!` lines become added, removed and
upgraded packages.
"""

import datetime
import json
import re
import sys

name, status, previous, current, diff_file = sys.argv[1:6]
added, removed, upgraded = [], [], []
with open(diff_file, encoding="utf-8", errors="replace") as diff:
    for line in diff:
        m = re.match(r"^([!+-])\s+(\S+)\s+\|\s+(\S+)\s+\|\s+(\S+)\s+\|\s+(\S+)", line)
        if not m:
            continue
        mark, arch, package, old, new = m.groups()
        if mark == "+":
            added.append({"package": package, "arch": arch, "version": new})
        elif mark == "-":
            removed.append({"package": package, "arch": arch, "version": old})
        else:
            upgraded.append({"package": package, "arch": arch, "from": old, "to": new})
print(json.dumps({"repo": name, "status": status, "previous": previous.split(), "current": current.split(),
                  "added": added, "removed": removed, "upgraded": upgraded,
                  "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
                 sort_keys=True))
