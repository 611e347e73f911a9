#!/bin/bash
# Meridian matching node bootstrap (EC2 user data, first boot).
# hotpath/template.yaml inlines this file through Fn::Base64 + Fn::Sub, so dollar-brace names are
# template parameters and plain shell variables are written without braces. The files below marked
# "embedded" are copies of hotpath/deploy/*; after editing any of them (or this file) run
# `python -m tests.infra.embedded --write`.
set -euo pipefail
exec >>/var/log/meridian-bootstrap.log 2>&1
echo "meridian bootstrap: $(date -u +%FT%TZ)"

ENVIRONMENT='${Environment}'
REGION='${AWS::Region}'
RELEASE_URI='${NodeReleaseS3Uri}'
NODE_MODE='${NodeMode}'
KERNEL_CPU_ISOLATION='${KernelCpuIsolation}'
REPLICATED='${ReplicatedShards}'

dnf install -y -q python3.11 python3.11-devel gcc ethtool xfsprogs amazon-cloudwatch-agent aws-cfn-bootstrap

# ---- journal volume (/dev/sdf, gp3/io2, encrypted): XFS, no atime updates
DEVICE=/dev/sdf
for _ in $(seq 1 120); do [ -e "$DEVICE" ] && break; sleep 1; done
blkid "$DEVICE" >/dev/null 2>&1 || mkfs.xfs -q "$DEVICE"
UUID=$(blkid -s UUID -o value "$DEVICE")
mkdir -p /var/lib/meridian
grep -q "$UUID" /etc/fstab || echo "UUID=$UUID /var/lib/meridian xfs noatime,nofail 0 2" >> /etc/fstab
mount -a
id meridian >/dev/null 2>&1 || useradd --system --home-dir /var/lib/meridian --shell /sbin/nologin meridian
install -d -o meridian -g meridian /var/lib/meridian /var/log/meridian
install -d /etc/meridian /opt/meridian

# ---- the matching node release: the layer's meridian package, meridian_hotpath, deploy/ helpers
aws s3 cp --only-show-errors --region "$REGION" "$RELEASE_URI" /opt/meridian/release.tar.gz
rm -rf /opt/meridian/app && mkdir -p /opt/meridian/app
tar -xzf /opt/meridian/release.tar.gz -C /opt/meridian/app
python3.11 -m venv /opt/meridian/venv
/opt/meridian/venv/bin/pip install -q --no-cache-dir -r /opt/meridian/app/deploy/requirements-node.txt
# The native matching core and journal syncer, compiled here from the bundle's generated C.
(cd /opt/meridian/app && /opt/meridian/venv/bin/python setup_native.py --quiet build_ext --inplace)

# ---- this node's shard: one launch template serves every shard's Auto Scaling group, and the group's
# tags (set at launch, read from IMDSv2: the launch template exposes instance tags) name the shard.
# Shard n's node number is NodeNumber + n - 1 (trade ids stay unique across the fleet). A tag that
# cannot be read stops the bootstrap: a node never guesses its shard.
IMDS=http://169.254.169.254/latest
TOKEN=$(curl -sSf -X PUT "$IMDS/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
imds() { curl -sSf --retry 12 --retry-all-errors -H "X-aws-ec2-metadata-token: $TOKEN" "$IMDS/meta-data/$1"; }
SHARD_INDEX=$(imds tags/instance/meridian:shard-index)
SHARD_NAME=$(imds tags/instance/meridian:shard)
ARCHIVE_PREFIX=$(imds tags/instance/meridian:archive-prefix)
SCALING_GROUP=$(imds tags/instance/meridian:scaling-group)
case "$SHARD_INDEX" in
  [1-4]) NODE_NUMBER=$(( ${NodeNumber} + SHARD_INDEX - 1 )); [ "$NODE_NUMBER" -le 65535 ] ;;
  # high volatility's spare capacity: released, installed and tuned, serving no shard
  spare) NODE_MODE=spare REPLICATED=false NODE_NUMBER=none ;;
  *) echo "meridian bootstrap: no shard index ($SHARD_INDEX)"; exit 1 ;;
esac

# ---- a replicated shard: this node's name in the lease (its instance id) and the address the other
# node and the lease's readers reach it at (its private IP), both from IMDSv2
SHARD_ARGS=""
if [ "$REPLICATED" = "true" ]; then
  INSTANCE_ID=$(imds instance-id)
  PRIVATE_IP=$(imds local-ipv4)
  SHARD_ARGS="--shard $SHARD_NAME --lease-table ${LeaseTable} --node-id $INSTANCE_ID --advertise $PRIVATE_IP --replication-port 9002 --lease-ttl-ms ${LeaseTtlMs}"
fi

cat > /etc/meridian/node.env <<ENV
AWS_REGION=$REGION
AWS_DEFAULT_REGION=$REGION
PYTHONPATH=/opt/meridian/app
MERIDIAN_ENVIRONMENT=$ENVIRONMENT
MERIDIAN_KINESIS_STREAM=${MarketDataStreamName}
MERIDIAN_EXECUTIONS_STREAM=${ExecutionsStreamName}
MERIDIAN_SHARD=$SHARD_NAME
MERIDIAN_NODE_NUMBER=$NODE_NUMBER
MERIDIAN_ACK_AFTER=${AckAfter}
MERIDIAN_SHARD_ARGS="$SHARD_ARGS"
MERIDIAN_SESSION_KEY_SECRET_ARNS=${SessionKeySecretArns}
MERIDIAN_ARCHIVE_BUCKET=${EngineStateBucketName}
MERIDIAN_ARCHIVE_PREFIX=$ARCHIVE_PREFIX
MERIDIAN_ROUTES_PARAMETER=${RoutesParameter}
MERIDIAN_METRICS_URL=http://127.0.0.1:9101/metrics
MERIDIAN_CLOUDWATCH_NAMESPACE=Meridian/Hotpath
ENV

# ---- host tuning, at every boot
# embedded: hotpath/deploy/tune-host.sh
cat > /usr/local/sbin/meridian-tune-host <<'MERIDIAN_EMBEDDED'
#!/bin/bash
# Host tuning for a Meridian matching node. Runs at every boot (meridian-tuning.service), before the
# node, because IRQ affinity and NIC settings do not survive a reboot.
set -euo pipefail

# CPU partition: the first two physical cores and their hyperthread siblings take the kernel, IRQs,
# agents and helpers ("housekeeping"); every other CPU is left to the matching engine.
read -r HOUSEKEEPING ENGINE < <(python3 - <<'PY'
def parse(text):
    cpus = set()
    for part in text.strip().split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus

def siblings(cpu):
    with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list") as f:
        return parse(f.read())

with open("/sys/devices/system/cpu/online") as f:
    online = sorted(parse(f.read()))
housekeeping = set()
for cpu in online:
    if len(housekeeping) >= max(2, len(online) // 8):
        break
    housekeeping |= siblings(cpu)
engine = [c for c in online if c not in housekeeping] or online
print(",".join(map(str, sorted(housekeeping))), ",".join(map(str, engine)))
PY
)
install -d /etc/meridian /etc/systemd/system.conf.d
printf 'MERIDIAN_HOUSEKEEPING_CPUS=%s\nMERIDIAN_ENGINE_CPUS=%s\n' "$HOUSEKEEPING" "$ENGINE" > /etc/meridian/cpus.env
printf '[Manager]\nCPUAffinity=%s\n' "$HOUSEKEEPING" > /etc/systemd/system.conf.d/60-meridian-housekeeping.conf

# IRQ affinity: irqbalance would spread NIC interrupts over the engine's CPUs, so it is off and
# every IRQ (the ENA queues included) is pinned to the housekeeping CPUs.
systemctl disable --now irqbalance.service 2>/dev/null || true
for irq in /proc/irq/[0-9]*; do
  echo "$HOUSEKEEPING" > "$irq/smp_affinity_list" 2>/dev/null || true
done

# ENA: no interrupt moderation, answers leave as soon as they are written.
IFACE=$(ip -o -4 route show default | awk '{print $5; exit}')
ethtool -C "$IFACE" adaptive-rx off rx-usecs 0 tx-usecs 0 2>/dev/null || true

# Kernel network and memory settings for small, latency-critical TCP messages.
cat > /etc/sysctl.d/60-meridian-latency.conf <<'SYSCTL'
net.core.busy_poll = 50
net.core.busy_read = 50
net.core.rmem_max = 16777216
net.core.wmem_max = 16777216
net.core.rmem_default = 1048576
net.core.wmem_default = 1048576
net.ipv4.tcp_rmem = 4096 1048576 16777216
net.ipv4.tcp_wmem = 4096 1048576 16777216
net.core.netdev_max_backlog = 30000
net.core.somaxconn = 4096
net.ipv4.tcp_slow_start_after_idle = 0
net.ipv4.tcp_fastopen = 3
vm.swappiness = 0
kernel.numa_balancing = 0
SYSCTL
sysctl --quiet --system
echo never > /sys/kernel/mm/transparent_hugepage/enabled || true
MERIDIAN_EMBEDDED
chmod 0755 /usr/local/sbin/meridian-tune-host
# embedded: hotpath/deploy/meridian-tuning.service
cat > /etc/systemd/system/meridian-tuning.service <<'MERIDIAN_EMBEDDED'
[Unit]
Description=Meridian host tuning (CPU partition, IRQ affinity, NIC coalescing, sysctls)
DefaultDependencies=no
After=local-fs.target network-pre.target
Before=network-online.target meridian-node.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/meridian-tune-host

[Install]
WantedBy=multi-user.target
MERIDIAN_EMBEDDED
/usr/local/sbin/meridian-tune-host
source /etc/meridian/cpus.env
# Optional kernel isolation of the engine CPUs (takes a reboot). isolcpus also turns off load
# balancing inside the set, so only enable it with a node that pins its own threads.
REBOOT=no
if [ "$KERNEL_CPU_ISOLATION" = "true" ] && ! grep -q isolcpus /proc/cmdline; then
  grubby --update-kernel=ALL --args="isolcpus=managed_irq,domain,$MERIDIAN_ENGINE_CPUS nohz_full=$MERIDIAN_ENGINE_CPUS rcu_nocbs=$MERIDIAN_ENGINE_CPUS intel_idle.max_cstate=1"
  REBOOT=yes
fi

# ---- services
# embedded: hotpath/deploy/meridian-node.service
cat > /etc/systemd/system/meridian-node.service <<'MERIDIAN_EMBEDDED'
[Unit]
Description=Meridian matching node
After=network-online.target meridian-tuning.service
Wants=network-online.target
Requires=meridian-tuning.service
RequiresMountsFor=/var/lib/meridian

[Service]
Type=simple
User=meridian
Group=meridian
EnvironmentFile=/etc/meridian/node.env
# Written at every boot by meridian-tuning.service: MERIDIAN_ENGINE_CPUS (the CPUs the OS, IRQs and
# helpers stay off) and MERIDIAN_HOUSEKEEPING_CPUS. Every other unit runs on the housekeeping CPUs
# (system.conf.d CPUAffinity); taskset moves the engine onto its own.
EnvironmentFile=/etc/meridian/cpus.env
ExecStart=/usr/bin/taskset -c $MERIDIAN_ENGINE_CPUS /opt/meridian/venv/bin/python -m meridian_hotpath serve --host 0.0.0.0 --port 9001 --metrics-port 9101 --data-dir /var/lib/meridian --kinesis-stream $MERIDIAN_KINESIS_STREAM --executions-stream $MERIDIAN_EXECUTIONS_STREAM --auth-secret-arns $MERIDIAN_SESSION_KEY_SECRET_ARNS --node-number $MERIDIAN_NODE_NUMBER --ack-after $MERIDIAN_ACK_AFTER $MERIDIAN_SHARD_ARGS
# The session keys are read again (a rotated secret) on `systemctl reload meridian-node`.
ExecReload=/bin/kill -HUP $MAINPID
# On every stop (deploys, scale-in, instance retirement) ship the journal, active segment included,
# so a replacement node or the DR region restores up to the last acknowledged order. A replicated
# shard's node does not: the shard's other node holds every acknowledged order and, as the primary,
# is the one node that ships the shard's archive (meridian-journal-ship.service).
ExecStopPost=-/bin/sh -c 'test -n "$$MERIDIAN_SHARD_ARGS" || exec "$$0" "$$@"' /opt/meridian/venv/bin/python -m meridian_hotpath.archive ship --include-active --data-dir /var/lib/meridian --bucket $MERIDIAN_ARCHIVE_BUCKET --prefix $MERIDIAN_ARCHIVE_PREFIX
Restart=on-failure
RestartSec=1
TimeoutStopSec=60
Nice=-10
LimitNOFILE=1048576
LimitMEMLOCK=infinity
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=/var/lib/meridian /var/log/meridian
StandardOutput=append:/var/log/meridian/node.log
StandardError=append:/var/log/meridian/node.log

[Install]
WantedBy=multi-user.target
MERIDIAN_EMBEDDED
install -m 0644 /opt/meridian/app/deploy/meridian-journal-ship.service /opt/meridian/app/deploy/meridian-journal-ship.timer \
  /opt/meridian/app/deploy/meridian-cloudwatch-bridge.service /etc/systemd/system/
# embedded: hotpath/deploy/termination-watch.sh
cat > /usr/local/sbin/meridian-termination-watch <<'MERIDIAN_EMBEDDED'
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
MERIDIAN_EMBEDDED
chmod 0755 /usr/local/sbin/meridian-termination-watch
# embedded: hotpath/deploy/meridian-termination-watch.service
cat > /etc/systemd/system/meridian-termination-watch.service <<'MERIDIAN_EMBEDDED'
[Unit]
Description=Meridian: hold an Auto Scaling termination until the matching node has stopped and shipped
After=meridian-node.service

[Service]
EnvironmentFile=/etc/meridian/node.env
ExecStart=/usr/local/sbin/meridian-termination-watch
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
MERIDIAN_EMBEDDED
# embedded: hotpath/deploy/activate.sh
cat > /usr/local/sbin/meridian-activate <<'MERIDIAN_EMBEDDED'
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
MERIDIAN_EMBEDDED
chmod 0755 /usr/local/sbin/meridian-activate
printf '/var/log/meridian/*.log {\n  daily\n  rotate 7\n  compress\n  missingok\n  copytruncate\n}\n' > /etc/logrotate.d/meridian
sed "s|__LOG_GROUP__|${NodeLogGroup}|g" /opt/meridian/app/deploy/cloudwatch-agent.json > /opt/aws/amazon-cloudwatch-agent/etc/meridian.json
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:/opt/aws/amazon-cloudwatch-agent/etc/meridian.json
systemctl daemon-reexec
systemctl enable meridian-tuning.service

# An active node restores its shard and starts serving; a standby (DR region) waits for the runbook;
# a spare serves nothing.
if [ "$NODE_MODE" = "active" ]; then
  /usr/local/sbin/meridian-activate
fi

# A replicated shard's rolling update waits for this signal before it replaces the other node: the
# node is ready once it holds the shard's lease or the lease says its standby is in sync (this node,
# caught up). Failing that within the update's PauseTime, the update stops and rolls back.
if [ "$REPLICATED" = "true" ]; then
  READY=no LEASE=none
  [ "$NODE_MODE" = "active" ] || READY=yes
  for _ in $(seq 1 200); do
    [ "$READY" = "yes" ] && break
    LEASE=$(aws dynamodb get-item --region "$REGION" --table-name '${LeaseTable}' --consistent-read \
      --key "{\"shard\": {\"S\": \"$SHARD_NAME\"}}" --query '[Item.holder.S, Item.in_sync.BOOL]' --output text 2>/dev/null || true)
    case "$LEASE" in
      "$INSTANCE_ID"[[:space:]]*|*[[:space:]]True) READY=yes ;;
      *) sleep 5 ;;
    esac
  done
  [ "$READY" = "yes" ] && SIGNAL=0 || SIGNAL=1
  echo "meridian bootstrap: lease $LEASE, ready=$READY"
  /opt/aws/bin/cfn-signal --exit-code "$SIGNAL" --stack '${AWS::StackName}' --resource "$SCALING_GROUP" \
    --region "$REGION" || true
fi
echo "meridian bootstrap done: mode=$NODE_MODE shard=$SHARD_NAME node=$NODE_NUMBER"
if [ "$REBOOT" = "yes" ]; then
  systemctl reboot
fi
