"""The engine's decision for each resource, next to the documentation it follows.

Sources: the pulumi-command provider (provider/pkg/provider/remote/commandController.go: Create,
Update and Delete; copyController.go: Update copies only a changed source or path; the schema marks
`triggers` replaceOnChanges), the Python SDK (every Command and CopyToRemote is registered with
replace_on_changes=["triggers[*]"]), the `update` input's documentation ("If empty, the create
command will be executed instead"), `create`'s ("will not be executed if the resource has already
been created and its inputs are unchanged"), and the engine's deleteBeforeReplace option.
"""

from __future__ import annotations

import pulumi
import pytest
from pulumi_command import remote

from offline.lifecycle import Action, command_to_run, copies, decide, deletion_order

CMD, COPY = "command:remote:Command", "command:remote:CopyToRemote"
TRIGGERS = ["triggers[*]"]
BASE = {"create": "install", "update": "install", "delete": "remove", "triggers": ["sha256:1"], "stdin": "x"}

DECISIONS = [
    # (id, old inputs, new inputs, replaceOnChanges, deleteBeforeReplace, action, changed)
    pytest.param(None, BASE, TRIGGERS, False, Action.CREATE, (), id="new-resource-is-created"),
    pytest.param(BASE, dict(BASE), TRIGGERS, False, Action.SAME, (), id="unchanged-inputs-run-nothing"),
    pytest.param(BASE, {**BASE, "create": "install v2", "update": "install v2"}, TRIGGERS, False, Action.UPDATE,
                 ("create", "update"), id="changed-script-updates-in-place"),
    pytest.param(BASE, {**BASE, "stdin": "y"}, TRIGGERS, False, Action.UPDATE, ("stdin",),
                 id="changed-stdin-updates-in-place"),
    pytest.param(BASE, {**BASE, "delete": "remove --purge"}, TRIGGERS, False, Action.UPDATE, ("delete",),
                 id="changed-delete-command-is-an-update"),
    pytest.param(BASE, {**BASE, "triggers": ["sha256:2"]}, TRIGGERS, False, Action.REPLACE, ("triggers",),
                 id="changed-trigger-replaces-even-with-an-update-command"),
    pytest.param(BASE, {**BASE, "triggers": ["sha256:2"], "create": "x"}, TRIGGERS, True, Action.REPLACE,
                 ("create", "triggers"), id="replacement-honours-delete-before-replace"),
    pytest.param(BASE, {**BASE, "connection": {"host": "10.0.0.2"}}, TRIGGERS, False, Action.UPDATE,
                 ("connection",), id="a-new-host-alone-is-an-update-no-replace-on-connection"),
    pytest.param({"source": "a", "remotePath": "/x", "triggers": ["1"]},
                 {"source": "a", "remotePath": "/x", "triggers": ["2"]}, TRIGGERS, False, Action.REPLACE,
                 ("triggers",), id="copy-with-new-trigger-is-replaced"),
]


@pytest.mark.parametrize("old,new,replace_on,dbr,action,changed", DECISIONS)
def test_decision(old, new, replace_on, dbr, action, changed):
    decision = decide(old, new, replace_on_changes=replace_on, delete_before_replace=dbr)
    assert decision.action is action
    assert decision.changed == changed
    assert decision.delete_before_replace == (dbr and action is Action.REPLACE)


@pytest.mark.parametrize("action,inputs,expected", [
    pytest.param(Action.CREATE, BASE, "install", id="create-runs-create"),
    pytest.param(Action.UPDATE, {**BASE, "update": "upgrade"}, "upgrade", id="update-runs-update"),
    pytest.param(Action.UPDATE, {**BASE, "update": None}, "install", id="update-without-update-runs-create"),
    pytest.param(Action.REPLACE, BASE, "install", id="replacement-runs-the-new-create"),
    pytest.param(Action.DELETE, BASE, "remove", id="delete-runs-delete"),
    pytest.param(Action.DELETE, {**BASE, "delete": None}, None, id="no-delete-command-runs-nothing"),
    pytest.param(Action.SAME, BASE, None, id="same-runs-nothing"),
])
def test_command_run_for_each_action(action, inputs, expected):
    assert command_to_run(CMD, action, inputs) == expected
    assert command_to_run("tls:index/privateKey:PrivateKey", action, inputs) is None


@pytest.mark.parametrize("action,changed,expected", [
    pytest.param(Action.CREATE, (), True, id="created-copy-copies"),
    pytest.param(Action.REPLACE, ("triggers",), True, id="replaced-copy-copies"),
    pytest.param(Action.UPDATE, ("source",), True, id="new-source-copies"),
    pytest.param(Action.UPDATE, ("remotePath",), True, id="new-path-copies"),
    pytest.param(Action.UPDATE, ("connection",), False, id="only-connection-changed-copies-nothing"),
    pytest.param(Action.DELETE, (), False, id="copy-has-no-delete"),
])
def test_copy_to_remote(action, changed, expected):
    assert copies(COPY, action, changed) is expected


def test_dependants_are_deleted_before_what_they_depend_on():
    created = ["ca", "cert", "install", "fill", "clients"]
    deps = {"cert": ["ca"], "install": ["cert"], "fill": ["install"], "clients": ["install"]}
    order = deletion_order(created, deps, {})
    for urn, needs in deps.items():
        for dependency in needs:
            assert order.index(urn) < order.index(dependency), order
    assert deletion_order(["parent", "child"], {}, {"child": "parent"}) == ["child", "parent"]


def test_the_sdk_registers_commands_with_the_replacement_the_table_assumes():
    """The table above takes `replaceOnChanges: triggers[*]` from the SDK: check the SDK still says so."""
    captured = {}

    class Capture(pulumi.runtime.Mocks):
        def new_resource(self, args):
            return f"{args.name}-id", args.inputs

        def call(self, args):
            return {}

    class Monitor(pulumi.runtime.mocks.MockMonitor):
        def RegisterResource(self, request):
            if request.type in (CMD, COPY):
                captured[request.type] = list(request.replaceOnChanges)
            return super().RegisterResource(request)

    pulumi.runtime.set_mocks(Capture(), preview=False, monitor=Monitor(Capture()))

    @pulumi.runtime.test
    def program():
        connection = remote.ConnectionArgs(host="127.0.0.1", host_key="ssh-ed25519 AAAA")
        remote.Command("c", connection=connection, create="true")
        remote.CopyToRemote("f", connection=connection, source=pulumi.FileAsset(__file__), remote_path="/tmp/x")
        return pulumi.Output.from_input(True)

    program()
    assert captured == {CMD: ["triggers[*]"], COPY: ["triggers[*]"]}
