# archiver in a container: a slim Python, the wheel built from this tree, a user that is not
# root, and the catalog on a volume (it must outlive the container: it is what makes the next
# run resume instead of listing everything again).
#
#   docker build -t call-recording-archiver .
#   docker run --rm --env-file /etc/archiver/credentials.env -v archiver-state:/var/lib/archiver \
#       call-recording-archiver run --provider plivo --since -7d --dest s3://acme-calls/recordings
#
# ffmpeg comes with imageio-ffmpeg (a static binary in the wheel). The one Debian package is
# tini, as PID 1: only run, backfill and fetch install a SIGTERM handler, and PID 1 without a
# handler ignores SIGTERM, so `docker stop` of a transcode, verify or export would wait its 10 s
# and SIGKILL it (exit 137) instead of stopping it (143). tini forwards the signal to archiver.
#
# BASE: any image with `python` and `pip` (3.11 or later) on PATH and apt; python:3.12-slim by
# default (--build-arg BASE=... for a mirror or a pinned digest).
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY archiver ./archiver
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${BASE}
# tini's version is the distribution's (bookworm: 0.19.0); pinning it would break the build at
# the next point release of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
# uid and gid 10001 both (a Kubernetes fsGroup or a chown of a bind-mounted folder names one
# number); no skeleton dotfiles: the home is the volume, which should hold only the catalog.
RUN groupadd --system --gid 10001 archiver \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /var/lib/archiver \
        --no-create-home --shell /usr/sbin/nologin archiver \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/archiver
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# TINI_SUBREAPER: quiet and still reaping when tini is not PID 1 (`docker run --init`, a pod
# that shares its process namespace).
ENV PYTHONUNBUFFERED=1 \
    TINI_SUBREAPER=1 \
    HOME=/var/lib/archiver \
    ARCHIVER_CATALOG=/var/lib/archiver/catalog.db
# A config file, if any, mounted at /etc/archiver/config.toml is read without flags.
VOLUME ["/var/lib/archiver"]
WORKDIR /var/lib/archiver
# Numeric, so that Kubernetes' runAsNonRoot can tell it is not root.
USER 10001:10001
ENTRYPOINT ["tini", "--", "archiver"]
CMD ["--help"]
