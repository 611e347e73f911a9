#!/bin/bash
# Make this node the active matching node of its shard: restore the shard's state from the S3
# archive when the data volume is empty, then start the node, the journal shipper and the
# CloudWatch bridge. The bootstrap runs it on active nodes; the DR runbook runs it (SSM Run Command)
# on the warm standby in the secondary region.
set -euo pipefail
set -a
. /etc/meridian/node.env
set +a
PY=/opt/meridian/venv/bin/python
if [ -z "$(ls -A /var/lib/meridian)" ]; then
  if aws s3 ls "s3://$MERIDIAN_ARCHIVE_BUCKET/$MERIDIAN_ARCHIVE_PREFIX/journal/" >/dev/null 2>&1; then
    # A damaged or incomplete archive fails here, before the node could start from an empty book;
    # the node itself re-checks every snapshot and journal record it recovers from.
    runuser -u meridian -- "$PY" -m meridian_hotpath.archive restore --data-dir /var/lib/meridian \
      --bucket "$MERIDIAN_ARCHIVE_BUCKET" --prefix "$MERIDIAN_ARCHIVE_PREFIX"
  fi
fi
systemctl enable --now meridian-node.service meridian-journal-ship.timer meridian-cloudwatch-bridge.service \
  meridian-termination-watch.service
