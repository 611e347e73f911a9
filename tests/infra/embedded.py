"""Files that templates and the node bootstrap carry inline, kept identical to their sources.

CloudFormation cannot read a file of the repository at deploy time, so a few files (the Grafana
dashboard, the Prometheus configuration, the node's bootstrap and units) are copied into the place
that ships them at build time, under a marker comment naming the source::

    # embedded: hotpath/deploy/tune-host.sh
    cat > /usr/local/sbin/meridian-tune-host <<'MERIDIAN_EMBEDDED'     (a shell heredoc)
    ...
    MERIDIAN_EMBEDDED

    # embedded: observability/prometheus/prometheus.yml
    Value: |                                                           (a YAML block scalar)
      ...

``python -m tests.infra.embedded --write`` (``make embed``, which ``make build`` runs first) re-copies
every source; without ``--write`` it lists the stale copies and exits 1. The infra tests run the same
check, so ``make test`` (and the pipeline's build) fails on a copy that differs from its file.

Why copies rather than a deploy-time include: ``AWS::Include`` inserts a snippet as template
structure, not as a string; turning the dashboard into the string an ECS variable needs takes
``Fn::ToJsonString`` under ``AWS::LanguageExtensions`` in the nested stack, which the offline checks
(cfn-lint, checkov, the SAM translator, the local platform) would each have to expand themselves, and
which ``sam package`` has handled unevenly across releases. A copy is plain YAML every tool reads.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^(?P<indent>\s*)# embedded: (?P<source>\S+)\s*$")
HEREDOC = re.compile(r"<<'(?P<delimiter>\w+)'\s*$")
BLOCK_SCALAR = re.compile(r":\s*\|[-+]?\s*$")
# Hosts are processed in this order: the bootstrap script first, since a template embeds it.
HOSTS = ("hotpath/deploy/user-data.sh", "hotpath/template.yaml", "stacks/monitoring.yaml")


@dataclass(frozen=True)
class Embed:
    host: str
    source: str
    start: int  # first line of the copy (index into the host's lines)
    end: int  # one past its last line
    indent: str  # prefix of every non-empty line of the copy


def find_embeds(host: str, lines: list[str]) -> list[Embed]:
    embeds: list[Embed] = []
    for number, line in enumerate(lines):
        marker = MARKER.match(line)
        if marker is None or number + 1 >= len(lines):
            continue
        if embeds and number < embeds[-1].end:
            continue  # a marker inside a copy belongs to the copied file, which is checked on its own
        opener = lines[number + 1]
        start = number + 2
        heredoc = HEREDOC.search(opener)
        if heredoc is not None:
            end = start
            while end < len(lines) and lines[end].rstrip("\n") != heredoc["delimiter"]:
                end += 1
            embeds.append(Embed(host, marker["source"], start, end, ""))
        elif BLOCK_SCALAR.search(opener):
            indent = " " * (len(opener) - len(opener.lstrip(" ")) + 2)
            end = start
            while end < len(lines) and (not lines[end].strip() or lines[end].startswith(indent)):
                end += 1
            while end > start and not lines[end - 1].strip():
                end -= 1  # trailing blank lines belong to the YAML, not to the block
            embeds.append(Embed(host, marker["source"], start, end, indent))
    return embeds


def render(embed: Embed) -> list[str]:
    text = (ROOT / embed.source).read_text()
    return [f"{embed.indent}{line}" if line.strip() else "\n" for line in text.splitlines(keepends=True)]


def sync(write: bool) -> list[str]:
    """Return "host <- source" for every stale copy; with ``write``, fix them."""
    stale = []
    for host in HOSTS:
        path = ROOT / host
        if not path.exists():
            continue
        lines = path.read_text().splitlines(keepends=True)
        for embed in reversed(find_embeds(host, lines)):  # bottom-up keeps earlier indices valid
            fresh = render(embed)
            if lines[embed.start : embed.end] != fresh:
                stale.append(f"{host} <- {embed.source}")
                lines[embed.start : embed.end] = fresh
        if write and stale:
            path.write_text("".join(lines))
    return stale


def embedded_sources() -> dict[str, list[str]]:
    """host -> the sources it embeds, for tests that want to assert what ships where."""
    found: dict[str, list[str]] = {}
    for host in HOSTS:
        path = ROOT / host
        if path.exists():
            embeds = find_embeds(host, path.read_text().splitlines(keepends=True))
            found[host] = [embed.source for embed in embeds]
    return found


def main(argv: list[str] | None = None) -> int:
    summary = __doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m tests.infra.embedded", description=summary)
    parser.add_argument("--write", action="store_true", help="re-copy every stale embedded file")
    args = parser.parse_args(argv)
    stale = sync(write=args.write)
    for entry in stale:
        print(("updated " if args.write else "stale ") + entry)
    return 0 if args.write or not stale else 1


if __name__ == "__main__":
    sys.exit(main())
