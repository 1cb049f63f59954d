"""The airgap-infra policy pack (`pulumi preview --policy-pack policy`). Only builds the pack:
the policies live in policies.py."""

import sys
from pathlib import Path

from pulumi_policy import PolicyPack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project: components' own tables

from policies import POLICIES, STACK_POLICIES

PolicyPack(name="airgap-infra", policies=[*POLICIES, *STACK_POLICIES])
