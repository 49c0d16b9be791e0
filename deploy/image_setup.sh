#!/bin/sh
# Image build step (bentofile.yaml `docker.setup_script`), run as root before `USER bentoml`.
# Creates the CANDLECAST_HOME mount point owned by the non-root runtime user: a fresh named
# volume mounted there copies this ownership, so the service and the hourly job can write
# the candle store and the Feast online store without running as root.
set -eu
home="${CANDLECAST_HOME:-/home/bentoml/candlecast}"
mkdir -p "$home"
chown bentoml:bentoml "$home"
