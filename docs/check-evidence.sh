#!/bin/sh
# Checks a Tollgate evidence bundle with jq and sha256sum: every event hashes to its hash, the
# links run unbroken to the checkpoint, and each event is one of the links.
set -eu
bundle=$1
fail() { echo "FAIL: $*"; exit 1; }
jq -c '.events[]' "$bundle" | while read -r event; do
  prev=$(printf '%s' "$event" | jq -r .prev_hash)
  hash=$(printf '%s' "$event" | jq -r .hash)
  got=$(printf '%s' "$event" | jq -j '.prev_hash + .canonical' | sha256sum | cut -d' ' -f1)
  [ "$got" = "$hash" ] || fail "event $(printf '%s' "$event" | jq .seq) does not hash to its hash"
  [ "$(jq --arg h "$hash" '[.links[] | select(.hash == $h)] | length' "$bundle")" = 1 ] \
    || fail "event $(printf '%s' "$event" | jq .seq) is not among the links"
done
[ "$(jq '[.links as $l | range(1; $l | length) | select($l[.].prev_hash != $l[. - 1].hash)] | length' "$bundle")" = 0 ] \
  || fail "the links are broken"
[ "$(jq -r '.links[-1].hash == .checkpoint.hash' "$bundle")" = true ] || fail "the links do not end at the checkpoint"
echo "OK: $(jq '.events | length' "$bundle") events, linked to checkpoint $(jq -r '.checkpoint.chain + "#" + (.checkpoint.seq | tostring)' "$bundle")"
