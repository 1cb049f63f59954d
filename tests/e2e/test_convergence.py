"""Convergence: whatever sequence of edits brought a stack about, `up` leaves the hosts holding exactly
what a fresh apply of that stack gives them.

Random sequences of two or three edits (images, apt and RPM repositories, artifacts, mirror and
registry clients added or removed; components removed and put back; ports moved; TLS switched
on or off; see convergence.py) are applied one `up` at a time to sandbox hosts; after each `up`
the next preview must have nothing to do (no change, no drift). At the end of a sequence the hosts
are observed (every file where the stack writes, with its sha256, mode and owner; the units; what
the mirrors and the file server serve; the registry's tags and digests; the stack's outputs), then
thrown away, and the final stack is applied to new hosts on the same addresses: their observation
must be the same. Those hosts then carry the next sequence, so one fresh apply per sequence
serves both as the reference of one and the start of the next (about 12 s a sequence here).

Same addresses, not a second set of hosts beside the first: the certificates name the hosts'
addresses, so hosts elsewhere would hold other certificates, and every file naming an address
would need rewriting before a comparison. Left out of the comparison, each for its reason:
times (Release files, compressed indexes' headers, manifests' mtimes, update reports; see
observe_host.py); what nginx hides (dot-paths); what a component removed from the stack keeps on
purpose (its data, unless `purge`; tested per component in test_day2_sandbox.py); images of
earlier stacks, which the registry keeps (it never deletes), each with the digest it was filled
with.

The sequences come from a seeded generator, not hypothesis: each starts where the one before
ended, which hypothesis' independent, shrinkable examples do not model, and shrinking would
re-run whole applies. The seed (CONVERGENCE_SEED, fixed by default so that CI is reproducible)
and a sequence's number (CONVERGENCE_ONLY) replay it alone, from a fresh apply of its start; a
failure prints both. CONVERGENCE_SEQUENCES sets how many are drawn (30 by default).

The stack is the sandbox stack with a handful of images (the upstream fixture serves many more;
filling them would only cost time) and without ck8s (it only writes files on the admin machine).
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from offline import cli, quickstart
from offline.executor import Executor
from offline.lifecycle import Action
from offline.stackfile import EXAMPLE_PASSPHRASE, StackConfig, load_stack
from sandbox.hosts import Sandbox, SandboxHost, leftovers
from sandbox.upstream import UpstreamRegistry
from sandbox.upstream_repos import UpstreamRepos

from . import convergence
from .convergence import Observation, Sequence, Stack

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("CONVERGENCE_SEED", "20261206"))
SEQUENCES = int(os.environ.get("CONVERGENCE_SEQUENCES", "30"))
ONLY = {int(n) for n in os.environ.get("CONVERGENCE_ONLY", "").split(",") if n.strip()}
# Far above what the sequences take (about 12 s each here): a hang fails the test, not CI.
DEADLINE_SECONDS = 20 * 60
BASTION = ("bastion", "127.0.0.10")
HOSTS = tuple(host for host in quickstart.HOSTS if host != BASTION)


class Generation:
    """Hosts on the sandbox stack's addresses with a stack applied to them, and its state."""

    def __init__(self, number: int, upstream: UpstreamRegistry, work: Path) -> None:
        self.state = work / f"state-{number}.json"
        self.work = work
        self.exports: dict = {}
        # One run per host, so that they boot (and stop) side by side.
        self.sandboxes = {name: Sandbox() for name, _ in HOSTS}
        errors: list[BaseException] = []

        def boot(name: str, address: str) -> None:
            trust = {upstream.endpoint: upstream.ca_pem} if name == "registry" else None
            try:
                self.sandboxes[name].up(name, address, trust=trust)
            except BaseException as error:  # re-raised below, in the test's thread
                errors.append(error)

        threads = [threading.Thread(target=boot, args=host) for host in HOSTS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            self.close()
            raise errors[0]

    @property
    def hosts(self) -> list[SandboxHost]:
        return [host for sandbox in self.sandboxes.values() for host in sandbox.hosts()]

    def up(self, config: StackConfig) -> None:
        """Apply `config` as `python -m offline up` does; AssertionError with what it printed when
        it failed."""
        out = io.StringIO()
        outcome = cli.shown_run("up", config, self.state, out=out, local_dir=self.work)
        if not outcome.ok or outcome.run is None:
            raise AssertionError(f"up failed: {outcome.error}\n{out.getvalue()}")
        self.exports = dict(outcome.run.exports)

    def pending(self, config: StackConfig) -> str:
        """What a preview of `config` would still change (drift included); empty when nothing."""
        executor = Executor(local_dir=self.work)
        try:
            outcome = cli.run(config, self.state, mode="preview", executor=executor)
        finally:
            executor.close()
        if not outcome.ok:
            return f"the preview failed: {outcome.error}"
        return "\n".join(cli.describe(step) + "".join(f"\n      {line}" for line in step.drift)
                         for step in outcome.engine.steps if step.action is not Action.SAME)

    def observe(self, password: str) -> Observation:
        return convergence.observe(self.hosts, self.exports, password)

    def close(self) -> None:
        for host in self.hosts:
            # Thrown away: their services need no orderly stop (the replacement systemctl takes
            # seconds per service), so KILL follows TERM at once.
            host.stop_grace = 0.0
            host.terminate()
        for sandbox in self.sandboxes.values():
            sandbox.close()


class Hosts:
    """The hosts the sequences run on: one generation at a time, replaced by new hosts at every
    fresh apply."""

    def __init__(self, upstream: UpstreamRegistry, work: Path, base: StackConfig) -> None:
        self.upstream, self.work, self.base = upstream, work, base
        self.current: Generation | None = None
        self.stack: Stack | None = None
        """What `current` holds."""
        self.made = 0

    def on(self, stack: Stack) -> Generation:
        """Hosts holding `stack`: the current ones if they do, else fresh ones."""
        if self.current is not None and self.stack == stack:
            return self.current
        return self.fresh(stack)

    def fresh(self, stack: Stack) -> Generation:
        """New hosts with `stack` applied from nothing; the hosts before them are thrown away."""
        self.close()
        self.made += 1
        self.current, self.stack = Generation(self.made, self.upstream, self.work), stack
        try:
            self.current.up(stack.render(self.base))
        except AssertionError as error:
            raise AssertionError(f"a fresh apply of {stack.describe()} failed (seed {SEED}): {error}") from None
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
        self.current, self.stack = None, None


@pytest.fixture(scope="module")
def bastion(upstream_repos: UpstreamRepos, upstream_registry: UpstreamRegistry) -> Iterator[None]:
    """The registry host is reached through it, as in the sandbox stack; it holds nothing of the
    stack, so it serves every generation of hosts."""
    if os.geteuid() != 0:
        pytest.skip("sandbox hosts need root (namespaces, mounts)")
    if quickstart.running():
        pytest.skip("a quick-start sandbox is running (make sandbox); `make sandbox-down` frees its addresses")
    with Sandbox() as sandbox:
        sandbox.up(*BASTION)
        yield
    assert leftovers() == []


def test_random_edit_sequences_converge_to_what_a_fresh_apply_gives(
        bastion, upstream_registry: UpstreamRegistry, work: Path) -> None:
    base = load_stack("sandbox", passphrase=EXAMPLE_PASSPHRASE)
    password = base.values["airgap-infra:secrets"]["registryPassword"]
    plan = convergence.sequences(SEED, SEQUENCES)
    selected = [sequence for sequence in plan if not ONLY or sequence.index in ONLY]
    print(f"convergence: seed {SEED}, {len(selected)} of {len(plan)} sequences")
    if not ONLY and SEQUENCES >= 30:
        rare = {card: n for card, n in convergence.dealt(plan).items() if n < 3}
        assert not rare, f"seed {SEED} hardly makes these edits: {rare}"
    started = time.monotonic()
    hosts = Hosts(upstream_registry, work, base)
    failures: list[str] = []
    try:
        for sequence in selected:
            assert time.monotonic() - started < DEADLINE_SECONDS, "the sequences take far longer than they should"
            begun = time.monotonic()
            converged_hosts = hosts.on(sequence.start)
            problem, filled = run_sequence(sequence, converged_hosts, base)
            converged = converged_hosts.observe(password) if problem is None else None
            reference = hosts.fresh(sequence.final)  # also the start of the next sequence
            if converged is not None:
                expected = reference.observe(password)
                blind = convergence.blind_spots(expected, sequence.final)
                assert not blind, f"{sequence.describe(SEED)}\n  the observation is blind to: {blind}"
                final_lock = convergence.locked(reference.exports)
                retained = {name: digest for name, digest in filled.items() if name not in final_lock}
                found = convergence.differences(converged, expected, sequence.final, retained)
                if found:
                    problem = "the hosts differ from a fresh apply:\n" + "\n".join(f"    {line}" for line in found)
            if problem is not None:
                failures.append(f"{sequence.describe(SEED)}\n  {problem}")
            print(f"convergence: sequence {sequence.index} {'FAILED' if problem else 'ok'} "
                  f"in {time.monotonic() - begun:.0f}s")
    finally:
        hosts.close()
    print(f"convergence: {len(selected)} sequences in {time.monotonic() - started:.0f}s")
    assert not failures, f"{len(failures)} of {len(selected)} sequences did not converge:\n\n" + "\n\n".join(failures)


def run_sequence(sequence: Sequence, hosts: Generation, base: StackConfig) -> tuple[str | None, dict[str, str]]:
    """Apply each edit with `up`: what went wrong (or None), and every image the registry was
    filled with on the way (`repository:tag` → digest), the start's included."""
    filled = convergence.locked(hosts.exports)
    for number, (what, stack) in enumerate(sequence.edits, 1):
        config = stack.render(base)
        try:
            hosts.up(config)
        except AssertionError as error:
            return f"edit {number} ({what}): {error}", filled
        filled.update(convergence.locked(hosts.exports))
        left = hosts.pending(config)
        if left:
            return f"edit {number} ({what}): after `up`, a preview still has work:\n{left}", filled
    return None, filled
