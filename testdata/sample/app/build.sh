#!/bin/sh
set -e
echo "built by strata on $(uname -m) at stage build"
ls -1 | sort
