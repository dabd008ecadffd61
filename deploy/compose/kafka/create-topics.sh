#!/bin/bash
# Creates the platform's topics (shared/src/cpu_shared/messaging/topics.py) on the compose
# broker: run once by the `kafka-topics` service, before any CPU service starts. Idempotent:
# an existing topic is left as it is (partitions are never changed: the message key is the
# aggregate id, and more partitions would move keys and break per-aggregate order).
#
# Retention: the four event topics and every .dlq keep their messages for ever
# (retention.ms=-1): `cpu reporting rebuild` replays the event topics from offset 0, and a
# dead letter must stay until it is redriven. icac.tips.inbound holds raw partner reports
# (personal data) that icac copies into its own store: 30 days.
#
# tests/deploy/test_deploy_manifests.py checks this list against topics.py.
set -euo pipefail

BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-kafka:9092}"
REPLICATION="${REPLICATION_FACTOR:-1}"
FOREVER=-1
DAYS_30=2592000000

create() {
  local name="$1" partitions="$2" retention="$3"
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$name" --partitions "$partitions" --replication-factor "$REPLICATION" \
    --config "retention.ms=$retention" --config cleanup.policy=delete
}

create intake.referral.events 3 "$FOREVER"
create casework.case.events 3 "$FOREVER"
create forensics.evidence.events 3 "$FOREVER"
create icac.tips.inbound 6 "$DAYS_30"
create icac.tip.events 3 "$FOREVER"
create intake.referral.events.dlq 1 "$FOREVER"
create casework.case.events.dlq 1 "$FOREVER"
create forensics.evidence.events.dlq 1 "$FOREVER"
create icac.tips.inbound.dlq 1 "$FOREVER"
create icac.tip.events.dlq 1 "$FOREVER"

/opt/kafka/bin/kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --list
