#!/usr/bin/env bash
# Lane 3: a real Debian kernel with 802.1Q VLAN devices, in a VM (qemu, software emulation), for what this
# machine's own kernel cannot do. The host's root is shared read-only with a tmpfs overlay on top inside the
# guest, so the project's binaries run there unchanged. No network card: the VM reaches nothing outside itself.
#
#   Tests/vm-lane.sh prepare           fetch Debian's kernel package (apt-get download; never installed) and build
#                                      a small initramfs; cached in $VNET_VM_CACHE (default .build/vm-lane)
#   Tests/vm-lane.sh run COMMAND...    boot, run COMMAND inside (root, in this repository, VNET_VM_LANE=1),
#                                      show its output as it runs, exit with its status
#   Tests/vm-lane.sh guest             build (cached) a tiny instance guest from the same kernel: a busybox
#                                      initramfs whose init brings up eth0 (virtio-net), asks DHCP for an
#                                      address, pings its router and then just answers pings; prints the paths
#                                      of the kernel and the initramfs. Boot it with qemu on a tap.
#   Tests/vm-lane.sh host NAME SHARE [--smp N] [--mem SIZE] [-- QEMU_ARGS...]
#                                      lane 4: one host of a cluster of VMs (its NIC given in QEMU_ARGS), running
#                                      the commands written to SHARE/cmd/ (host() below says how); in the foreground
#
# Needs root, qemu-system-x86, busybox-static and kmod (deploy/install-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
cache=${VNET_VM_CACHE:-$repo/.build/vm-lane}
timeout_seconds=${VNET_VM_TIMEOUT:-900}

fail() { echo "vm-lane: $*" >&2; exit 2; }

need_tools() {
  [ "$(id -u)" -eq 0 ] || fail "needs root (the kernel package is extracted and booted as root)"
  local missing=()
  for tool in qemu-system-x86_64 depmod modprobe apt-get apt-cache dpkg-deb; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  { [ -x /bin/busybox ] && /bin/busybox --list | grep -x cpio >/dev/null; } || missing+=("busybox (static, with cpio)")
  [ ${#missing[@]} -eq 0 ] || fail "missing ${missing[*]}; run: apt-get install qemu-system-x86 busybox-static kmod"
}

kernel_version() {
  local package
  package=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$package" ] || fail "apt does not know Debian's kernel package linux-image-amd64 (run apt-get update)"
  echo "${package#linux-image-}"
}

# An initramfs tree at ROOT: static busybox and MODULES with their dependencies from the extracted kernel
# package at KERNEL, in load order (modules.order; the init insmods them in turn: there is no modprobe there).
skeleton() {
  local root=$1 kernel=$2 version=$3
  shift 3
  mkdir -p "$root/bin" "$root/modules" "$root/proc" "$root/sys" "$root/dev"
  cp /bin/busybox "$root/bin/busybox"
  : >"$root/modules.order"
  for module in "$@"; do
    modprobe -d "$kernel" -S "$version" --show-depends "$module" | awk '$1 == "insmod" {print $2}' | while read -r path; do
      local name
      name=$(basename "$path")
      grep -qx "$name" "$root/modules.order" || { cp "$path" "$root/modules/"; echo "$name" >>"$root/modules.order"; }
    done
  done
}

prepare() {
  need_tools
  local version dir
  version=$(kernel_version)
  dir="$cache/$version"
  # The cache is reused while it was built by this version of the recipe.
  local recipe=2
  if [ "$(cat "$dir/ready" 2>/dev/null)" = "$recipe" ]; then echo "$dir"; return; fi
  rm -rf "$dir"
  mkdir -p "$dir/download"
  echo "vm-lane: fetching linux-image-$version (apt-get download; not installed)" >&2
  (cd "$dir/download" && apt-get download -q "linux-image-$version" >&2 2>/dev/null) \
    || { apt-get update -qq >&2 && version=$(kernel_version) && (cd "$dir/download" && apt-get download "linux-image-$version" >&2); } \
    || fail "cannot download linux-image-$version"
  dpkg-deb -x "$dir"/download/*.deb "$dir/root"
  rm -rf "$dir/download"
  depmod -b "$dir/root" "$version"
  # The initramfs: static busybox, the modules that reach the shared root (virtio PCI, 9p, overlay), an init.
  local initrd="$dir/initrd"
  skeleton "$initrd" "$dir/root" "$version" virtio_pci 9pnet_virtio 9p overlay
  cat >"$initrd/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for module in \$(cat /modules.order); do insmod /modules/\$module; done
mkdir -p /lower /upper /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro hostroot /lower || { echo "vm-lane: cannot mount the host root"; echo o > /proc/sysrq-trigger; }
mount -t tmpfs -o size=3g tmpfs /upper
mkdir -p /upper/data /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work /newroot
mkdir -p /newroot/vnet-vm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 vmshare /newroot/vnet-vm
# The guest kernel loads its modules (8021q, bridge, veth, netfilter) from the extracted package.
mkdir -p /newroot/usr/lib/modules
ln -sfn "$dir/root/lib/modules/$version" "/newroot/usr/lib/modules/$version"
umount /proc /sys /dev
exec switch_root /newroot /bin/bash /vnet-vm/guest.sh
INIT
  chmod +x "$initrd/init"
  (cd "$initrd" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$dir/initrd.img")
  cp "$dir/root/boot/vmlinuz-$version" "$dir/vmlinuz"
  echo "$recipe" >"$dir/ready"
  echo "$dir"
}

# The instance guest: what a hypervisor runs on one of the agent's taps, small enough to boot in seconds under
# software emulation. Everything it does is printed on its serial console as `vnet-guest: ...` lines.
guest() {
  local dir
  dir=$(prepare)
  local version
  version=$(basename "$dir")
  local recipe=2 image="$dir/guest"
  if [ "$(cat "$image/ready" 2>/dev/null)" != "$recipe" ]; then
    rm -rf "$image"
    local root="$image/root"
    skeleton "$root" "$dir/root" "$version" virtio_pci virtio_net
    # udhcpc's event script: the lease's address and default route, said on the console.
    cat >"$root/dhcp-event" <<'EVENT'
#!/bin/busybox sh
case "$1" in
  bound|renew)
    ip address flush dev "$interface"
    ip address add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    echo "${router%% *}" > /router
    echo "vnet-guest: bound $ip/$mask router ${router%% *}" >/dev/console ;;
  deconfig) ip address flush dev "$interface" ;;
esac
EVENT
    cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for module in $(cat /modules.order); do insmod /modules/$module; done
ip link set lo up
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
ip link set eth0 up
echo "vnet-guest: eth0 $(cat /sys/class/net/eth0/address)"
until udhcpc -i eth0 -s /dhcp-event -q -f -n -t 4 -T 2 >/dev/null 2>&1; do echo "vnet-guest: no lease yet"; done
router=$(cat /router)
if ping -c 1 -W 2 "$router" >/dev/null 2>&1 || ping -c 2 -W 2 "$router" >/dev/null 2>&1; then
  echo "vnet-guest: router $router answers"
else
  echo "vnet-guest: router $router does not answer"
fi
echo "vnet-guest: ready"
while :; do sleep 3600; done
INIT
    chmod +x "$root/init" "$root/dhcp-event"
    (cd "$root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$image/initrd.img")
    rm -rf "$root"
    echo "$recipe" >"$image/ready"
  fi
  echo "$dir/vmlinuz $image/initrd.img"
}

# Lane 4: one of several VMs, each a host of a cluster with a virtio-net NIC whose host side the caller made (a tap
# in a switch namespace; qemu must be started inside that namespace). The guest runs a command server on its share:
# the caller writes cmd/N.sh (N = 1, 2, ...; renamed into place whole), the guest runs each in turn and writes
# cmd/N.out and then cmd/N.rc. `ready` appears when eth0 is there; `halt` in the share powers the VM off.
host() {
  local name=${1:-} share=${2:-}
  [ -n "$name" ] && [ -d "$share" ] || fail "usage: Tests/vm-lane.sh host NAME SHARE_DIR [--smp N] [--mem SIZE] [-- QEMU_ARGS...]"
  shift 2
  local smp=1 mem=1024M
  while [ $# -gt 0 ]; do
    case "$1" in
      --smp) smp=$2; shift 2 ;;
      --mem) mem=$2; shift 2 ;;
      --) shift; break ;;
      *) fail "host: unknown option $1" ;;
    esac
  done
  [[ "$name" =~ ^[a-z][a-z0-9-]{0,30}$ ]] || fail "host: '$name' is not a host name"
  local dir
  dir=$(prepare)
  mkdir -p "$share/cmd"
  rm -f "$share/ready" "$share/halt"
  cat >"$share/guest.sh" <<GUEST
#!/bin/bash
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
ln -sfn /proc/self/fd /dev/fd 2>/dev/null
hostname $name; ip link set lo up
export PATH=/opt/swift/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root VNET_VM_LANE=1 VNET_VM_HOST=$name CI=${CI:-}
# No udev in the lane: the NIC's driver is loaded by hand.
modprobe virtio_net
for i in \$(seq 1 100); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
ip link set eth0 up
cd "$repo"
echo "vm-lane: host $name up, kernel \$(uname -r), eth0 \$(cat /sys/class/net/eth0/address 2>/dev/null || echo missing)"
touch /vnet-vm/ready
# Waiting with bash's own read on a fifo that never gets data: no process per poll (under software emulation a
# fork and exec 20 times a second cost a third of a host core per idle VM).
mkfifo /run/tick && exec 3<>/run/tick
n=0
while [ ! -e /vnet-vm/halt ]; do
  next=\$((n + 1))
  if [ -e /vnet-vm/cmd/\$next.sh ]; then
    bash /vnet-vm/cmd/\$next.sh >/vnet-vm/cmd/\$next.out 2>&1 </dev/null
    echo \$? >/vnet-vm/cmd/\$next.rc.tmp && mv /vnet-vm/cmd/\$next.rc.tmp /vnet-vm/cmd/\$next.rc
    n=\$next
  else
    read -r -t 0.05 -u 3 _ || true
  fi
done
sync
echo o >/proc/sysrq-trigger
GUEST
  chmod +x "$share/guest.sh"
  # exec: the caller's process is qemu itself, so the caller ends the VM by ending that process.
  exec qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -cpu max -smp "$smp" -m "$mem" \
    -nodefaults -display none -serial stdio -no-reboot \
    -kernel "$dir/vmlinuz" -initrd "$dir/initrd.img" -append "console=ttyS0 quiet loglevel=3 panic=-1" \
    -fsdev local,id=hostroot,path=/,readonly=on,security_model=none,multidevs=remap \
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
    -fsdev local,id=vmshare,path="$share",security_model=none \
    -device virtio-9p-pci,fsdev=vmshare,mount_tag=vmshare "$@" </dev/null
}

run() {
  [ $# -gt 0 ] || fail "run what? Tests/vm-lane.sh run COMMAND..."
  local dir share status
  dir=$(prepare)
  share=$(mktemp -d /tmp/vnet-vm-XXXXXX)
  trap 'rm -rf "$share"' EXIT
  printf '%q ' "$@" >"$share/command"
  cat >"$share/guest.sh" <<GUEST
#!/bin/bash
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
# /run fresh (network namespaces live there); /tmp stays the host's (the repository may be there), written on the overlay.
mount -t tmpfs tmpfs /run
ln -sfn /proc/self/fd /dev/fd 2>/dev/null
hostname vnet-vm; ip link set lo up
export PATH=/opt/swift/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root VNET_VM_LANE=1 CI=\${CI:-}
cd "$repo"
echo "vm-lane: guest kernel \$(uname -r); running: \$(cat /vnet-vm/command)"
bash -c "\$(cat /vnet-vm/command)" 2>&1 | tee /vnet-vm/output
echo "\${PIPESTATUS[0]}" >/vnet-vm/status
sync
echo o >/proc/sysrq-trigger
GUEST
  sed -i "s/CI=\\\${CI:-}/CI=${CI:-}/" "$share/guest.sh"
  chmod +x "$share/guest.sh"
  local started=$SECONDS
  timeout "$timeout_seconds" qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -cpu max -smp 2 -m 2048M \
    -nodefaults -nic none -display none -serial stdio -no-reboot \
    -kernel "$dir/vmlinuz" -initrd "$dir/initrd.img" -append "console=ttyS0 quiet loglevel=3 panic=-1" \
    -fsdev local,id=hostroot,path=/,readonly=on,security_model=none,multidevs=remap \
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
    -fsdev local,id=vmshare,path="$share",security_model=none \
    -device virtio-9p-pci,fsdev=vmshare,mount_tag=vmshare </dev/null | grep --line-buffered -v '^\s*$' || true
  if [ ! -f "$share/status" ]; then
    echo "vm-lane: the VM ended without reporting a status after $((SECONDS - started)) s (timeout ${timeout_seconds} s, or a crash above)" >&2
    exit 1
  fi
  status=$(cat "$share/status")
  echo "vm-lane: command exited $status after $((SECONDS - started)) s in the VM" >&2
  exit "$status"
}

command=${1:-}
shift || true
case "$command" in
  prepare) prepare >/dev/null ;;
  run) run "$@" ;;
  guest) guest ;;
  host) host "$@" ;;
  *) sed -n '2,19p' "$0" >&2; exit 2 ;;
esac
