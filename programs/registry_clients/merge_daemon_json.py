"""Docker's daemon.json with the private registry in `insecure-registries` or out of it (registry
clients, airgap-infra); every key the stack does not own is kept.

    python3 - DAEMON_JSON REGISTRY INSECURE

INSECURE is `yes` or `no`, or `gone` when the node no longer uses the registry: then a file left
with nothing in it is removed (Docker's defaults are the same without it). The file is replaced
atomically, and only when its text changes; `changed` is printed then.
"""

import json
import os
import sys

path, registry, insecure, gone = sys.argv[1], sys.argv[2], sys.argv[3] == "yes", sys.argv[3] == "gone"
try:
    with open(path) as handle:
        config = json.load(handle)
except FileNotFoundError:
    if gone:
        sys.exit(0)
    config = {}
if not isinstance(config, dict):
    sys.exit(f"{path}: not a JSON object; fix it by hand first")
listed = [r for r in config.get("insecure-registries", []) if r != registry]
if insecure:
    listed.append(registry)
if listed:
    config["insecure-registries"] = listed
else:
    config.pop("insecure-registries", None)
if gone and not config:
    os.remove(path)
    print("changed")
    sys.exit(0)
text = json.dumps(config, indent=2, sort_keys=True) + "\n"
try:
    with open(path) as handle:
        same = handle.read() == text
except FileNotFoundError:
    same = False
if not same:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".airgap-new", "w") as handle:
        handle.write(text)
    os.replace(path + ".airgap-new", path)
    print("changed")
