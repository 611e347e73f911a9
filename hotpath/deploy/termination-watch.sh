#!/bin/bash
# Holds this node's Auto Scaling termination (the group's lifecycle hook meridian-ship-journal, up to
# 10 minutes) until the node has stopped cleanly: stopping meridian-node writes its final snapshot and,
# on a one-node shard, ships the journal with its active segment (the unit's ExecStopPost). Then it
# lets the termination go on. A replicated shard's other node holds every acknowledged order already;
# stopping this one first hands it the lease at once instead of after the lease runs out.
set -u
IMDS=http://169.254.169.254/latest
imds() {
  local token
  token=$(curl -sSf -X PUT "$IMDS/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 60") || return 1
  curl -sSf -H "X-aws-ec2-metadata-token: $token" "$IMDS/meta-data/$1"
}
until [ "$(imds autoscaling/target-lifecycle-state 2>/dev/null)" = "Terminated" ]; do
  sleep 5
done
echo "meridian: this node is being terminated; stopping it (final snapshot, journal shipped)"
systemctl stop meridian-journal-ship.timer meridian-node.service
INSTANCE_ID=$(imds instance-id)
GROUP=$(aws autoscaling describe-auto-scaling-instances --region "$AWS_REGION" --instance-ids "$INSTANCE_ID" \
  --query 'AutoScalingInstances[0].AutoScalingGroupName' --output text)
aws autoscaling complete-lifecycle-action --region "$AWS_REGION" --lifecycle-hook-name meridian-ship-journal \
  --auto-scaling-group-name "$GROUP" --instance-id "$INSTANCE_ID" --lifecycle-action-result CONTINUE
