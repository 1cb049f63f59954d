import datetime, json, os, sys
repo, status, old, new = sys.argv[1:5]
def rpms(tree):
    found = set()
    for base, _, files in os.walk(tree) if tree else ():
        found |= {f for f in files if f.endswith(".rpm")}
    return found
before, after = rpms(old), rpms(new)
print(json.dumps({"repo": repo, "status": status, "previous": os.path.basename(old), "current": os.path.basename(new),
                  "added": sorted(after - before), "removed": sorted(before - after),
                  "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
                 sort_keys=True))
