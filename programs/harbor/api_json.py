"""The JSON of Harbor's API for the Harbor steps (airgap-infra): standard library only.

    health                         stdin: /health's answer; prints `healthy` when Harbor and
                                   every component are, else another status
    robot-id NAME                  stdin: /robots' answer; prints the id of the robot whose name
                                   ends in NAME, or nothing
    robot-create BODY SECRET_FILE  prints BODY (a robot, JSON) with its secret from SECRET_FILE
    robot-secret SECRET_FILE       prints a robot update that sets its secret from SECRET_FILE
"""

from __future__ import annotations

import json
import sys


def read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def main(command: str, *args: str) -> None:
    if command == "health":
        answer = json.load(sys.stdin)
        healthy = all(component["status"] == "healthy" for component in answer.get("components", []))
        print(answer["status"] if healthy else "degraded")
    elif command == "robot-id":
        (name,) = args
        print(next((str(robot["id"]) for robot in json.load(sys.stdin) if robot["name"].endswith(name)), ""))
    elif command == "robot-create":
        body, secret_file = args
        robot = json.loads(body)
        robot["secret"] = read(secret_file)
        print(json.dumps(robot))
    elif command == "robot-secret":
        (secret_file,) = args
        print(json.dumps({"secret": read(secret_file)}))
    else:
        sys.exit(f"api_json: unknown command {command!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
