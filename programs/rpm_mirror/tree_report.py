"""The JSON report of one repository's update (RPM mirror, airgap-infra), printed as one line.

    python3 - ID STATUS PREVIOUS CURRENT

PREVIOUS and CURRENT are the published snapshot directories before and after (PREVIOUS empty on
the first update); the packages of one and not the other are the added and removed ones.
"""

import datetime
import json
import os
import sys

repo, status, old, new = sys.argv[1:5]


def rpms(tree):
    found = set()
    for _, _, files in os.walk(tree) if tree else ():
        found |= {f for f in files if f.endswith(".rpm")}
    return found


before, after = rpms(old), rpms(new)
print(json.dumps({"repo": repo, "status": status, "previous": os.path.basename(old), "current": os.path.basename(new),
                  "added": sorted(after - before), "removed": sorted(before - after),
                  "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
                 sort_keys=True))
