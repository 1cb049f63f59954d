"""The SSH read command (programs/ssh/read.sh), run against a stub `ssh` that records what the
OpenSSH client would be given: the words, the pinned known_hosts, the key from stdin."""

import os
import shlex
import subprocess

from components.render.ssh_read import Hop, read_command

TARGET = Hop("10.0.0.5", 2222, "root", "ssh-ed25519 AAAAtarget")
BASTION = Hop("10.0.0.9", 22, "ad'min $(touch pwned)", "ssh-ed25519 AAAAbastion")
# Keeps its words (NUL-separated), the known_hosts and the key it was pointed at.
SSH_STUB = """#!/bin/sh
printf '%s\\0' "$@" > "$CAPTURE/argv"
for word in "$@"; do
  case "$word" in
    UserKnownHostsFile=*) cp "${word#UserKnownHostsFile=}" "$CAPTURE/known_hosts" ;;
    */key) cp "$word" "$CAPTURE/key" ;;
  esac
done
"""


def run(tmp_path, script: str, ssh_status: int = 0) -> list[str]:
    capture, temp = tmp_path / "capture", tmp_path / "tmp"
    capture.mkdir(exist_ok=True)
    temp.mkdir(exist_ok=True)
    (tmp_path / "ssh").write_text(SSH_STUB + f"exit {ssh_status}\n")
    (tmp_path / "ssh").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "CAPTURE": str(capture), "TMPDIR": str(temp)}
    result = subprocess.run(["/bin/sh", "-c", script], input="PRIVATE KEY\n", capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=30)
    assert result.returncode == ssh_status, result.stderr
    assert (capture / "key").read_text() == "PRIVATE KEY\n"
    assert not list(temp.iterdir()), "the key's temporary directory is removed when ssh ends"
    return (capture / "argv").read_text().split("\0")[:-1]


def option(words: list[str], name: str) -> str:
    return next(words[i + 1].split("=", 1)[1] for i, word in enumerate(words[:-1])
                if word == "-o" and words[i + 1].startswith(name + "="))


def test_the_host_key_is_pinned_and_the_command_is_one_word(tmp_path):
    words = run(tmp_path, read_command(TARGET, "cat /srv/mirror/airgap-reports/*.json 2>/dev/null || true"))
    assert words[:2] == ["-F", "/dev/null"]
    assert option(words, "StrictHostKeyChecking") == "yes" and option(words, "BatchMode") == "yes"
    assert words[-4:] == ["-p", "2222", "root@10.0.0.5", "cat /srv/mirror/airgap-reports/*.json 2>/dev/null || true"]
    assert (tmp_path / "capture/known_hosts").read_text() == "[10.0.0.5]:2222 ssh-ed25519 AAAAtarget\n"
    assert not any(word.startswith("ProxyCommand=") for word in words)


def test_the_bastion_is_reached_with_the_same_pins_and_its_name_as_data(tmp_path):
    words = run(tmp_path, read_command(TARGET, "true", BASTION))
    assert (tmp_path / "capture/known_hosts").read_text() == (
        "[10.0.0.5]:2222 ssh-ed25519 AAAAtarget\n10.0.0.9 ssh-ed25519 AAAAbastion\n")
    # ssh runs ProxyCommand with a shell: parsed as that shell would, the bastion is one word.
    jump = shlex.split(option(words, "ProxyCommand"))
    assert jump[0] == "ssh" and jump[-5:] == ["-p", "22", "-W", "%h:%p", "ad'min $(touch pwned)@10.0.0.9"]
    assert option(jump, "UserKnownHostsFile") == option(words, "UserKnownHostsFile"), "the same pinned hosts"
    assert not (tmp_path / "pwned").exists()


def test_ssh_s_status_is_the_command_s_and_the_key_goes_either_way(tmp_path):
    run(tmp_path, read_command(TARGET, "false"), ssh_status=3)
