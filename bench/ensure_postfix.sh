#!/usr/bin/env bash
# `make bench` compares email fan-out with postfix's smtp-source into smtp-sink; install them when
# missing (root on Debian). Only the tools are wanted: the postfix service must never start, so
# invoke-rc.d is told no for the length of the install (policy-rc.d exit 101).
set -u
if [ -x /usr/sbin/smtp-source ] && [ -x /usr/sbin/smtp-sink ]; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "postfix is not installed and cannot be here: the fanout figure will be skipped" >&2
  exit 0
fi
policy=/usr/sbin/policy-rc.d
made=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made=1
fi
apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >/dev/null \
  || echo "apt-get install postfix failed: the fanout figure will be skipped" >&2
[ -n "$made" ] && rm -f "$policy"
exit 0
