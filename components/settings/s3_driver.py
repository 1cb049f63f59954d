"""`harbor.s3`: parameters of Docker Distribution's s3 storage driver, which Harbor's installer
passes to its registry. Names, and the type the driver parses each as, from
registry/storage/driver/s3-aws/s3.go (`FromParameters`); tests/data/harbor_yml_keys.txt keeps the
list with its source. The secret key never sits here in plain text: `harbor.s3SecretKeySecret`."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..render.formats.urls import check_url
from .fields import Pattern

FLAGS = frozenset({"encrypt", "secure", "skipverify", "v4auth", "forcepathstyle", "usedualstack", "accelerate"})
NUMBERS = frozenset({"chunksize", "multipartcopychunksize", "multipartcopymaxconcurrency",
                     "multipartcopythresholdsize"})
TEXTS = frozenset({"accesskey", "region", "regionendpoint", "bucket", "keyid", "rootdirectory", "storageclass",
                   "useragent", "objectacl", "loglevel"})
CREDENTIALS = {"secretkey": "harbor.s3SecretKeySecret names the secret that holds it"}
PARAMETERS = FLAGS | NUMBERS | TEXTS | CREDENTIALS.keys()

# Values are written into harbor.yml and from there into the registry's configuration: plain
# words only (an S3 key id, a region, a bucket, a KMS key ARN, a path).
_TEXT = re.compile(r"[A-Za-z0-9._/:+-]{1,1024}", re.ASCII)
S3_BUCKET = Pattern(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
                    "is not an S3 bucket name; use lowercase letters, digits, '.' and '-' (3-63)")


def s3_parameters(value: Mapping[str, object]) -> Mapping[str, object]:
    """`value` when it is a driver configuration the registry reads as written; ValueError naming
    the parameter otherwise."""
    for name, item in value.items():
        if name in CREDENTIALS:
            raise ValueError(f"{name!r} is a credential and would be written in plain text; {CREDENTIALS[name]}")
        if name not in PARAMETERS:
            raise ValueError(f"{name!r} is not a parameter of the registry's s3 driver; use one of "
                             + ", ".join(sorted(PARAMETERS - CREDENTIALS.keys())))
        if name in FLAGS and not isinstance(item, bool):
            raise ValueError(f"{name}: {item!r} is not true or false")
        if name in NUMBERS and (isinstance(item, bool) or not isinstance(item, int) or item < 0):
            raise ValueError(f"{name}: {item!r} is not a whole number of bytes or requests")
        if name == "regionendpoint":
            try:
                check_url(str(item))
            except ValueError as error:
                raise ValueError(f"regionendpoint: {error}") from None
        if name in TEXTS:
            if not isinstance(item, str) or not _TEXT.fullmatch(item):
                raise ValueError(f"{name}: {item!r} may hold only letters, digits and . _ / : + -")
            if name == "bucket":
                try:
                    S3_BUCKET.check(item)
                except ValueError as error:
                    raise ValueError(f"bucket: {error}") from None
    if value and "bucket" not in value:
        raise ValueError("has no 'bucket'; the driver needs the bucket the registry keeps its data in")
    if value and "region" not in value and "regionendpoint" not in value:
        raise ValueError("has neither 'region' nor 'regionendpoint'; the driver needs one")
    return value
