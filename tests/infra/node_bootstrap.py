"""Run pieces of the matching node's bootstrap (hotpath/deploy/user-data.sh) under bash, with IMDSv2
answered by a stub: a shard's identity as the node reads it from its Auto Scaling group's tags, and
the shard flags it starts with. The infra tests use it for one shard (replicated or not) and for the
fleet (every shard's group)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.infra.templates import ROOT

USER_DATA = (ROOT / "hotpath" / "deploy" / "user-data.sh").read_text()
# What an instance of shard 1 of a stack with the default ShardName and ArchivePrefix reads.
SHARD_1_TAGS = {
    "meridian:shard-index": "1",
    "meridian:shard": "default",
    "meridian:archive-prefix": "shards/default",
    "meridian:scaling-group": "NodeAutoScalingGroup",
}
TEMPLATE_VALUES = {
    "LeaseTable": "meridian-shard-leases-prod",
    "LeaseTtlMs": "2000",
    "NodeNumber": "1",
}


def identity_block() -> str:
    """The bootstrap from its IMDS token to the end of the replicated shard's flags."""
    lines = USER_DATA.splitlines()
    start = lines.index("IMDS=http://169.254.169.254/latest")
    flags = lines.index('SHARD_ARGS=""')
    end = flags + lines[flags:].index("fi") + 1
    return "\n".join(lines[start:end])


def node_identity(
    tmp_path: Path,
    replicated: str,
    tags: dict[str, str] | None = None,
    template_values: dict[str, str] | None = None,
) -> dict[str, str]:
    """Run the identity block as an instance carrying ``tags`` would; the node.env line of the shard
    flags is written and sourced as activate.sh sources it. Returns the variables the rest of the
    bootstrap uses (SHARD_ARGS as MERIDIAN_SHARD_ARGS reads back) and the exit status."""
    tags = SHARD_1_TAGS if tags is None else tags
    values = {**TEMPLATE_VALUES, **(template_values or {})}
    block = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], identity_block())
    (env_line,) = [line for line in USER_DATA.splitlines() if line.startswith("MERIDIAN_SHARD_ARGS=")]
    answers = "".join(f" *tags/instance/{key}) echo '{value}';;" for key, value in tags.items())
    script = tmp_path / "identity.sh"
    script.write_text(
        "set -euo pipefail\n"
        f"REPLICATED='{replicated}' NODE_MODE=active\n"
        'curl() { case "$*" in *api/token*) echo token;; *instance-id*) echo i-0123456789abcdef0;;'
        f" *local-ipv4*) echo 10.0.4.37;;{answers} *) return 22;; esac; }}\n"
        f"{block}\n"
        f'cat > "$1" <<ENV\n{env_line}\nENV\n'
        'set -a; . "$1"; set +a\n'
        'printf "shard_args=%s\\n" "$MERIDIAN_SHARD_ARGS"\n'
        'printf "%s=%s\\n" shard "$SHARD_NAME" node_number "$NODE_NUMBER" archive_prefix "$ARCHIVE_PREFIX"'
        ' scaling_group "$SCALING_GROUP" node_mode "$NODE_MODE" replicated "$REPLICATED"\n'
    )
    run = subprocess.run(
        ["bash", str(script), str(tmp_path / "node.env")], capture_output=True, text=True, check=False
    )
    found = dict(line.split("=", 1) for line in run.stdout.splitlines() if "=" in line)
    return {**found, "status": str(run.returncode)}
