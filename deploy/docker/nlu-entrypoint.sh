#!/bin/sh
# The NLU container's entrypoint: pick OpenBLAS's kernels for the host CPU, then run Rasa with the
# image's arguments.  numpy's OpenBLAS (0.3.20, pinned through Rasa 3.6) falls back to its SSE3 kernels
# on CPUs it does not recognise, a third of the speed of a parse's matrix products; the image cannot
# know the host, so the choice is made here at start, by the same rule as nlu/blas.py (an operator's
# OPENBLAS_CORETYPE wins).  FRONTDESK_CPUINFO only exists for the tests.
#
# Rasa's API requires FRONTDESK_NLU_AUTH_TOKEN (`--auth-token`), handed over through the environment rather
# than the command line, where every user of the host could read it in `ps` (as nlu/serving.py does).
set -eu
if [ -z "${FRONTDESK_NLU_AUTH_TOKEN:-}" ]; then
  echo "frontdesk-nlu: FRONTDESK_NLU_AUTH_TOKEN is not set: Rasa's API would be open to anyone who reaches" \
       "port 5005. Set it to a random value (openssl rand -hex 32), the same for the desk and workers." >&2
  exit 1
fi
# Sanic's access log (Rasa's libraries at INFO) prints each request's URL, ?token= included: keep it off.
export LOG_LEVEL_LIBRARIES=ERROR
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  flags=" $(grep -m1 '^flags' "${FRONTDESK_CPUINFO:-/proc/cpuinfo}" 2>/dev/null | cut -d: -f2) "
  has() { case "$flags" in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
  if has avx512f && has avx512cd && has avx512bw && has avx512dq && has avx512vl; then
    export OPENBLAS_CORETYPE=SkylakeX
  elif has avx2 && has fma; then
    export OPENBLAS_CORETYPE=Haswell
  fi
fi
exec python -c "import os, sys; from rasa.__main__ import main; \
sys.argv = ['rasa', *sys.argv[1:], '--auth-token=' + os.environ.pop('FRONTDESK_NLU_AUTH_TOKEN')]; \
sys.exit(main())" run "$@"
