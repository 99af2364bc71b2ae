"""Enrolment bundles: the file `gridctl devices enrol --bundle FILE` writes.

A bundle is a text file of "name = value" lines: server_public, public_key
and secret_key (CURVE keys, Z85, 40 characters each), device_id,
upload_endpoint and feed_endpoint (the last three may be absent or empty).
Other lines, such as the "#" comments gridctl writes, are ignored. This is
the format the C client reads with gs_curve_keys_load and
gs_bundle_info_load (docs/security.md).
"""

import re
from dataclasses import dataclass
from typing import Optional

from .errors import GridsyncError

# sscanf(" %63[a-z_] = %299s") in the C client: a lower-case name, '=', and
# a value without spaces (Z85 may itself contain '=': only the first counts)
_LINE = re.compile(r"^\s*([a-z_]+)\s*=\s*(\S+)")


@dataclass(frozen=True)
class CurveKeys:
    """The CURVE keys a client needs, Z85 text."""
    server_public: str      # the broker's public key
    public_key: str         # this client's public key
    secret_key: str         # this client's secret key


@dataclass(frozen=True)
class Bundle:
    """What an enrolment bundle names. keys is None for a bundle without
    CURVE keys; the other fields are "" when the bundle lacks them."""
    keys: Optional[CurveKeys]
    device_id: str = ""
    upload_endpoint: str = ""
    feed_endpoint: str = ""


def load_bundle(path):
    """Read the enrolment bundle at path. Raises GridsyncError when it cannot
    be read, or when its keys are incomplete or not 40 characters (a bundle
    with none of the three keys gives keys None)."""
    fields = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = _LINE.match(line)
                if m:
                    fields[m.group(1)] = m.group(2)
    except OSError as e:
        raise GridsyncError(f"cannot read the bundle {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise GridsyncError(f"cannot read the bundle {path}: not UTF-8 text") from e
    names = ("server_public", "public_key", "secret_key")
    present = [n for n in names if fields.get(n)]
    keys = None
    if present:
        bad = [n for n in names if len(fields.get(n, "")) != 40]
        if bad:
            raise GridsyncError(
                f"{path}: {', '.join(bad)} missing or not a 40-character Z85 key: "
                f"is it an enrolment bundle (gridctl devices enrol --bundle)?")
        keys = CurveKeys(*(fields[n] for n in names))
    return Bundle(keys=keys, device_id=fields.get("device_id", ""),
                  upload_endpoint=fields.get("upload_endpoint", ""),
                  feed_endpoint=fields.get("feed_endpoint", ""))
