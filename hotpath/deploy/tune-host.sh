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
