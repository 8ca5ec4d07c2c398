#!/bin/sh
# Start scheduler-daemon the way deploy/systemd/dbcron.service starts it, on a
# host without systemd as PID 1 (a container, a chroot, a rehearsal box).
# Run as root; it replaces itself with the daemon, so the process you start is
# the daemon ($! in the caller = the pid in /var/lib/dbcron/dbcron.pid).
#
#   deploy/run-as-unit.sh [--log FILE] [scheduler-daemon options]
#
# What it reproduces from the unit, line by line:
#   StateDirectory=dbcron, StateDirectoryMode=0750  -> creates /var/lib/dbcron dbcron:dbcron 0750
#   User=dbcron Group=dbcron                        -> setpriv (no fork, no PAM: the pid stays)
#   NoNewPrivileges=yes                             -> setpriv --no-new-privs
#   UMask=0027                                      -> umask 0027
#   WorkingDirectory=/var/lib/dbcron                -> cd
#   Environment=DBCRON_STATE_DIR=/var/lib/dbcron    -> set first ...
#   EnvironmentFile=-/etc/dbcron/dbcron.env         -> ... then the file (it wins, as in systemd)
#   a clean environment (no root's PATH, HOME...)   -> env -i, plus STATE_DIRECTORY, HOME, USER
#   $NOTIFY_SOCKET, $WATCHDOG_USEC                  -> passed through when the caller sets them
#                                                      (WATCHDOG_PID = the daemon's pid)
#   StandardError=journal, $JOURNAL_STREAM          -> with --log FILE: stdout+stderr appended to
#                                                      FILE and JOURNAL_STREAM=<dev>:<inode> of it,
#                                                      so lines carry <3>/<4>/<6> priorities as
#                                                      journald would receive them
# Not reproduced: the sandbox (ProtectSystem=, PrivateUsers=, SystemCallFilter=...),
# the watchdog kill and Restart=on-failure: nothing restarts the daemon here.
set -eu

unit_user=dbcron
state_dir=/var/lib/dbcron
env_file=/etc/dbcron/dbcron.env
daemon=/opt/dbcron/venv/bin/scheduler-daemon
log=

if [ "${1:-}" = "--log" ]; then
    log=${2:?--log needs a file}
    shift 2
fi
if [ "$(id -u)" != 0 ]; then
    echo "run-as-unit.sh: run as root (it switches to $unit_user like User= does)" >&2
    exit 1
fi

install -d -m 0750 -o "$unit_user" -g "$unit_user" "$state_dir"
umask 0027
cd "$state_dir"

journal_stream=
if [ -n "$log" ]; then
    exec >>"$log" 2>&1
    # journald gives the daemon a stream whose device:inode is in $JOURNAL_STREAM;
    # the daemon writes <priority> prefixes only when its stderr is that stream.
    journal_stream=$(stat -L -c '%d:%i' "$log")
fi

# The unit's environment: Environment= first, EnvironmentFile= over it.
set -- env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG="${LANG:-C.UTF-8}" \
    HOME="$state_dir" USER="$unit_user" LOGNAME="$unit_user" SHELL=/usr/sbin/nologin \
    STATE_DIRECTORY="$state_dir" \
    DBCRON_STATE_DIR="$state_dir" \
    ${journal_stream:+JOURNAL_STREAM="$journal_stream"} \
    ${NOTIFY_SOCKET:+NOTIFY_SOCKET="$NOTIFY_SOCKET"} \
    ${WATCHDOG_USEC:+WATCHDOG_USEC="$WATCHDOG_USEC"} \
    ${WATCHDOG_USEC:+WATCHDOG_PID="$$"} \
    sh -c '
        if [ -r "$0" ]; then set -a; . "$0"; set +a; fi
        exec "$@"' "$env_file" "$daemon" "$@"

# setpriv execs in place (runuser and sudo fork and wait), so $$ is the daemon.
exec setpriv --reuid="$unit_user" --regid="$unit_user" --init-groups --no-new-privs -- "$@"
