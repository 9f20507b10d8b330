# archiver in a container: a slim Python, the wheel built from this tree, a user that is not
# root, and the catalog on a volume (it must outlive the container: it is what makes the next
# run resume instead of listing everything again).
#
#   docker build -t call-recording-archiver .
#   docker run --rm --env-file /etc/archiver/credentials.env -v archiver-state:/var/lib/archiver \
#       call-recording-archiver run --provider plivo --since -7d --dest s3://acme-calls/recordings
#
# ffmpeg comes with imageio-ffmpeg (a static binary in the wheel): no apt-get.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY archiver ./archiver
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/archiver --create-home archiver
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENV PYTHONUNBUFFERED=1 \
    ARCHIVER_CATALOG=/var/lib/archiver/catalog.db
# A config file, if any, mounted at /etc/archiver/config.toml is read without flags.
VOLUME ["/var/lib/archiver"]
WORKDIR /var/lib/archiver
USER archiver
ENTRYPOINT ["archiver"]
CMD ["--help"]
