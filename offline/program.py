"""Run the real `__main__.py` under Pulumi's mock runtime and record every resource.

`run_program(config)` evaluates the program as `pulumi up` would, with a recording mock monitor
that keeps each resource's type, name, inputs (as sent on the wire: camelCase, secrets still
wrapped), parent, dependencies and outputs, plus the stack's exports. Providers are emulated:
`pulumi-tls` offline (tls_emulation.py); `pulumi-command` either inertly (stdout empty) or, with
an `Executor`, for real: each remote command runs over SSH and each copy over SFTP, in the
order the SDK issues them (dependencies first, independent steps in parallel).
"""

from __future__ import annotations

import datetime
import logging
import runpy
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from . import tls_emulation
from .stackfile import PROJECT_DIR, StackConfig

SECRET_SIG = "4dabf18193072939515e22adb298388d"  # pulumi's wire marker for a secret value
SECRET_VALUE_SIG = "1b47061264138c4ac30d75fd1eb44270"


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE_SIG


def reveal(value: Any) -> Any:
    """Inputs with every secret marker removed (the plain values)."""
    if is_secret(value):
        return reveal(value.get("value"))
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def plain_parts(value: Any) -> Any:
    """Inputs with every secret replaced by `[secret]`: what a reviewer or a log may see."""
    if is_secret(value):
        return "[secret]"
    if isinstance(value, dict):
        return {k: plain_parts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_parts(v) for v in value]
    return value


@dataclass
class Recorded:
    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    parent: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    custom: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, keeping what `pulumi up` would send the engine."""

    def __init__(self, mocks: ProviderMocks, engine: Any | None = None):
        super().__init__(mocks)
        self.provider_mocks = mocks
        self.engine = engine
        """An offline engine (engine.Engine) deciding and applying each resource against a state;
        without one, every resource is handed to the mocks as new."""
        self.records: list[Recorded] = []
        self.component_outputs: dict[str, dict] = {}
        self._lock = threading.Lock()

    def RegisterResource(self, request):
        from pulumi.runtime import rpc

        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        response = self._register_with_engine(request) if self.engine is not None and request.custom \
            else super().RegisterResource(request)
        inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        record = Recorded(
            urn=response.urn,
            type=request.type,
            name=request.name,
            inputs=inputs,
            parent=request.parent,
            dependencies=sorted(request.dependencies),
            property_dependencies={k: sorted(v.urns) for k, v in sorted(request.propertyDependencies.items())},
            custom=request.custom,
            outputs=self.resources[response.urn].state if response.urn in self.resources else {},
            options={
                "deleteBeforeReplace": request.deleteBeforeReplace,
                "protect": request.protect,
                "additionalSecretOutputs": sorted(request.additionalSecretOutputs),
                "aliases": [str(a) for a in request.aliases],
            },
        )
        with self._lock:
            self.records.append(record)
        return response

    def _register_with_engine(self, request):
        """MockMonitor.RegisterResource, with the engine deciding what happens to the resource."""
        from pulumi.runtime import rpc
        from pulumi.runtime.proto import resource_pb2

        from .engine import Registration

        urn = self.make_urn(request.parent, request.type, request.name)
        pulumi_mocks._ensure_event_loop()  # deserialising resource references needs one on this thread
        registration = Registration(
            urn=urn, type=request.type, name=request.name, parent=request.parent,
            dependencies=sorted(request.dependencies),
            inputs=rpc.deserialize_properties(request.object, keep_unknowns=True),
            replace_on_changes=sorted(request.replaceOnChanges), delete_before_replace=request.deleteBeforeReplace,
            secret_outputs=sorted(request.additionalSecretOutputs))

        def emulate(plain: dict[str, Any]) -> dict[str, Any]:
            return self.provider_mocks.emulate(request.type, request.name, plain)

        assert self.engine is not None
        state = self.engine.register(registration, emulate)
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, f"{request.name}-id", state)
        serialized = _sync_await(rpc.serialize_properties(state, {}))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=f"{request.name}-id", object=serialized)

    def RegisterResourceOutputs(self, request):
        from pulumi.runtime import rpc

        outputs = rpc.deserialize_properties(request.outputs, keep_unknowns=True)
        with self._lock:
            self.component_outputs[request.urn] = outputs
        return super().RegisterResourceOutputs(request)


class ProviderMocks(pulumi.runtime.Mocks):
    """Provider behaviour: tls emulated; commands inert, or executed by `executor`."""

    def __init__(self, stack: str, executor: Any | None = None, tls_issued_at: datetime.datetime | None = None):
        self.stack = stack
        self.executor = executor
        self.tls_issued_at = tls_issued_at

    def emulate(self, typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """Outputs of a resource no executor runs: certificates emulated, anything else its inputs."""
        if typ in tls_emulation.TYPES:
            return tls_emulation.outputs(typ, f"{self.stack}/{name}", inputs, self.tls_issued_at)
        return dict(inputs)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = reveal(args.inputs)
        if args.typ in tls_emulation.TYPES:
            return f"{args.name}-id", self.emulate(args.typ, args.name, inputs)
        if args.typ in ("command:remote:Command", "command:local:Command"):
            result = {"stdout": "", "stderr": ""}
            if self.executor is not None:
                result = self.executor.run(args.typ, args.name, inputs)
            return f"{args.name}-id", {**args.inputs, **result}
        if args.typ == "command:remote:CopyToRemote":
            if self.executor is not None:
                self.executor.copy(args.name, inputs)
            return f"{args.name}-id", dict(args.inputs)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "command:local:run":
            if self.executor is None:
                return {"stdout": "", "stderr": ""}
            return self.executor.run("command:local:Command", "local-run", reveal(args.args) | {
                "create": reveal(args.args).get("command", "")})
        return {}


@dataclass
class ProgramRun:
    records: list[Recorded]
    exports: dict[str, Any]
    component_outputs: dict[str, dict]
    error: BaseException | None = None

    def by_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.records if r.type == typ]

    def named(self, name: str) -> Recorded:
        matches = [r for r in self.records if r.name == name]
        assert len(matches) == 1, f"{len(matches)} resources named {name!r}"
        return matches[0]

    def raise_error(self) -> ProgramRun:
        if self.error is not None:
            raise self.error
        return self


def run_program(config: StackConfig, *, executor: Any | None = None, preview: bool = False,
                main: Path = PROJECT_DIR / "__main__.py", tls_issued_at: datetime.datetime | None = None,
                engine: Any | None = None) -> ProgramRun:
    """Evaluate the program once for `config`; never raises for program errors (see `.error`).
    `tls_issued_at` fixes when emulated certificates start (see tls_emulation); an `engine`
    (engine.Engine) decides and applies each resource against the stack's state."""
    mocks = ProviderMocks(config.stack, executor, tls_issued_at)
    monitor = RecordingMonitor(mocks, engine)
    pulumi.runtime.settings.SETTINGS.rpc_manager.clear()  # as pulumi.runtime.test does: nothing
    pulumi.runtime.settings.SETTINGS.outputs.clear()      # left over from an earlier evaluation
    pulumi.runtime.settings.ROOT.set(None)  # a fresh Stack resource for this run (the setter wants one)
    pulumi.runtime.set_mocks(mocks, project=config.project, stack=config.stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(config.as_program_config(), sorted(config.secret_keys))
    exports: dict[str, Any] = {}

    async def resolve_exports():
        root = pulumi.runtime.settings.get_root_resource()
        for key, value in getattr(root, "outputs", {}).items():
            exports[key] = await pulumi.Output.from_input(value).future(with_unknowns=True)

    def program():
        if str(main.parent) not in sys.path:
            sys.path.insert(0, str(main.parent))
        runpy.run_path(str(main), run_name="__main__")

    error = None
    # A failed step fails several futures; the first error is reported here, so asyncio need not
    # print the others again when they are collected.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        _sync_await(run_pulumi_func(program))
        _sync_await(resolve_exports())
    except BaseException as exc:  # reported to the caller (see `.error`)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        error = exc
    return ProgramRun(records=list(monitor.records), exports=exports,
                      component_outputs=dict(monitor.component_outputs), error=error)
