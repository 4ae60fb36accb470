#!/bin/bash -eu
# OSS-Fuzz build.sh for strata: everything lives in the project's own script.
"$SRC/strata/fuzz/ossfuzz.sh"
