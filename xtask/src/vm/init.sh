#!/bin/busybox sh
# /init of the VM test initramfs, written by `cargo xtask vm-test`.
#
# Sets up what a booted Debian host would have (the mounts the daemon and
# the tests rely on, the TC and veth modules), runs every test binary in
# /ops-vm/tests.list, prints one marker line per binary and a final result line
# on the serial console, and powers off. The host parses only marker lines
# carrying this run's nonce, so test output cannot fake a result.
#
# busybox sh runs its own applets even for names a real program shadows in
# PATH, so iproute2 is always called by absolute path here.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin

/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

. /ops-vm/env

say() { echo "OPS-VM[$OPS_VM_NONCE] $*"; }
finish() {
    say "result=$1 $2"
    sync
    # -f: no init to signal; the kernel powers the machine off (qemu exits).
    poweroff -f
    sleep 10
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755 tmpfs /run
# No tmpfs over /tmp: the initramfs root is writable RAM already, and the
# test binaries sit at their host paths, which may lie under /tmp (a
# checkout there) and would be hidden.
mkdir -p /tmp
chmod 1777 /tmp
mount -t tracefs tracefs /sys/kernel/tracing
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p /run/netns /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t devpts devpts /dev/pts
ln -sf /proc/self/fd /dev/fd
hostname ops-vm

say "kernel=$(uname -r) cpus=$(nproc) mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)"

# insmod by full path: `dpkg -x` leaves no modules.dep for modprobe. The
# host lists them dependencies first.
while read -r ko; do
    insmod "$ko" || finish failure "reason=insmod-$ko"
done </ops-vm/modules.list

/usr/sbin/ip link set lo up

binaries=0
failed=0
while read -r name path; do
    binaries=$((binaries + 1))
    say "run=$name"
    started=$(date +%s)
    cd /tmp || finish failure "reason=no-tmp"
    # stdin from /dev/null: the loop reads the list on stdin.
    # shellcheck disable=SC2086 # the arguments are meant to split
    timeout "$OPS_VM_TEST_TIMEOUT" "$path" $OPS_VM_TEST_ARGS </dev/null
    status=$?
    took=$(($(date +%s) - started))
    [ "$status" -eq 0 ] || failed=$((failed + 1))
    say "done=$name status=$status seconds=$took"
    # A test must leave no namespace behind. Report, then remove what is
    # left so the next binary starts clean.
    for ns in /run/netns/*; do
        [ -e "$ns" ] || continue
        say "leftover-netns=${ns##*/}"
        /usr/sbin/ip netns del "${ns##*/}"
    done
done </ops-vm/tests.list

if [ "$binaries" -eq 0 ]; then
    finish failure "reason=no-test-binaries"
elif [ "$failed" -eq 0 ]; then
    finish success "binaries=$binaries"
else
    finish failure "binaries=$binaries failed=$failed"
fi
