"""Shell building blocks, run for real with bash in a temporary directory."""

import base64
import os
import stat
import subprocess

import pytest
from hypothesis import given, strategies as st

from components.render.shell import SecretFile, heredoc_delimiter, put_file, step_script, take_secrets


def run_step(body: str, stdin: str = "") -> subprocess.CompletedProcess:
    script = step_script(body)
    subprocess.run(["bash", "-n", "-c", script], check=True)
    return subprocess.run(["sh", "-c", script], input=stdin, capture_output=True, text=True)


def secret_line(value: str) -> str:
    return base64.b64encode(value.encode()).decode() + "\n"


def owner() -> str:
    return f"{os.getuid()}:{os.getgid()}"


def test_put_file_writes_once_and_reports_change(tmp_path):
    target = tmp_path / "etc" / "app.conf"
    body = put_file(str(target), "a = 1\n", owner=owner(), tag="conf") + 'echo "changed:$CHANGED"'
    first = run_step(body)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "changed: conf"
    assert target.read_text() == "a = 1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    second = run_step(body)
    assert second.stdout.strip() == "changed:"
    assert [p.name for p in target.parent.iterdir()] == ["app.conf"], "temporary files left behind"


def test_put_file_fixes_mode_drift(tmp_path):
    target = tmp_path / "app.conf"
    body = put_file(str(target), "x\n", mode="0640", owner=owner()) + 'echo "changed:$CHANGED"'
    run_step(body)
    target.chmod(0o666)
    assert run_step(body).stdout.strip() == "changed: file"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.parametrize("content", [
    "plain\n",
    "$(touch /tmp/should-not-exist) `id` ${HOME} 'quote' \"dq\"\n",
    "AIRGAP_EOF\nEOF\n\n",
    "no trailing newline",
])
def test_put_file_content_is_never_expanded(tmp_path, content):
    target = tmp_path / "f"
    result = run_step(put_file(str(target), content, owner=owner()))
    assert result.returncode == 0, result.stderr
    expected = content if content.endswith("\n") else content + "\n"
    assert target.read_text() == expected
    assert not os.path.exists("/tmp/should-not-exist")


@pytest.mark.parametrize("path", ["/tmp/a b/c", "/tmp/x;touch /tmp/pwned", "/tmp/$(id)"])
def test_hostile_paths_are_quoted(tmp_path, path):
    target = str(tmp_path) + path
    result = run_step(put_file(target, "x\n", owner=owner()))
    assert result.returncode == 0, result.stderr
    assert open(target).read() == "x\n"
    assert not os.path.exists("/tmp/pwned")


def test_secrets_arrive_on_stdin_in_order_and_private(tmp_path):
    files = [SecretFile(str(tmp_path / "key.pem"), "0600", owner(), "tls"),
             SecretFile(str(tmp_path / "htpasswd"), "0640", owner(), "auth")]
    secrets = ["-----BEGIN KEY-----\nsecret-one\n", "user:$2y$10$hash'\"`$(x)\n"]
    body = take_secrets(files) + 'echo "changed:$CHANGED"'
    result = run_step(body, "".join(secret_line(s) for s in secrets))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "key.pem").read_text() == secrets[0]
    assert (tmp_path / "htpasswd").read_text() == secrets[1]
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "htpasswd").stat().st_mode) == 0o640
    assert result.stdout.strip() == "changed: tls auth"
    again = run_step(body, "".join(secret_line(s) for s in secrets))
    assert again.stdout.strip() == "changed:"
    for secret in secrets:
        assert secret.strip() not in step_script(body)


def test_missing_secret_fails_the_step(tmp_path):
    files = [SecretFile(str(tmp_path / "a"), owner=owner()), SecretFile(str(tmp_path / "b"), owner=owner())]
    result = run_step(take_secrets(files), secret_line("only one"))
    assert result.returncode != 0
    assert "no secret on stdin" in result.stderr
    assert not (tmp_path / "b").exists()


def test_secret_tmp_is_removed_on_exit(tmp_path):
    body = 'airgap_secret_tmp creds\ncat "$creds"\necho "$creds" > ' + str(tmp_path / "where")
    result = run_step(body, secret_line("user = \"a:b\""))
    assert result.stdout.startswith('user = "a:b"')
    assert not os.path.exists((tmp_path / "where").read_text().strip())


def test_failure_stops_the_step_and_cleans_up():
    result = run_step("echo before\nfalse\necho after")
    assert result.returncode != 0
    assert "before" in result.stdout and "after" not in result.stdout


def test_unset_variable_is_an_error():
    assert run_step('echo "$NOT_SET_ANYWHERE"').returncode != 0


def test_sudo_wrapper_renders():
    assert 'sudo -n bash "$step"' in step_script("true", sudo=True)
    assert "sudo" not in step_script("true")


@given(st.lists(st.sampled_from(["AIRGAP_EOF", "EOF", "AIRGAP_EOF_0", "", "x", "'", "$(x)"]), max_size=8))
def test_heredoc_delimiter_never_collides(lines):
    content = "\n".join(lines) + "\n"
    assert heredoc_delimiter(content) not in content.splitlines()


def test_an_unchanged_file_leaves_its_directory_untouched(tmp_path):
    target = tmp_path / "conf" / "app.conf"
    body = put_file(str(target), "same\n", owner=owner())
    run_step(body)
    before = os.stat(target.parent).st_mtime_ns, os.stat(target).st_mtime_ns
    run_step(body)
    assert (os.stat(target.parent).st_mtime_ns, os.stat(target).st_mtime_ns) == before


def test_steps_leave_nothing_in_tmp(tmp_path):
    before = set(os.listdir("/tmp"))
    run_step(take_secrets([SecretFile(str(tmp_path / "s"), owner=owner())]) + "airgap_secret_tmp x",
             secret_line("one") + secret_line("two"))
    assert {n for n in set(os.listdir("/tmp")) - before if n.startswith("airgap-")} == set()
