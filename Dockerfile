# The service image: lighttpd + code-interpreter (FastCGI master, workers, pool
# manager) + health_check, for APP_EXECUTOR_BACKEND=kubernetes (k8s/statefulset.yaml).
# Build from the repository root:  docker build -t code-interpreter .
# (make images builds it with podman, offline: scripts/images.sh)

# The build stage is executor/Dockerfile's, line for line: the two builds
# share its layers (the second build reuses the first one's compile).
FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config \
      libfcgi-dev libjson-c-dev libcurl4-openssl-dev libsqlite3-dev libssl-dev \
      libseccomp-dev libmicrohttpd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# what the binaries are made of, so that other edits keep the compile cached
COPY Makefile ./
COPY common common
COPY storage storage
COPY executor executor
COPY fcgi-app fcgi-app
COPY docs/openapi.json docs/
RUN make BUILD=/out /out/code-interpreter /out/health_check /out/executor

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends lighttpd libfcgi0ldbl libjson-c5 libcurl4 \
      libsqlite3-0 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 app \
 && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app \
 && mkdir -p /run/code-interpreter /var/lib/code-interpreter \
 && chown 1000:1000 /run/code-interpreter /var/lib/code-interpreter
COPY --from=build /out/code-interpreter /out/health_check /usr/local/bin/
# migrations/ and lighttpd/ are read from APP_DATA_DIR
COPY migrations /usr/share/code-interpreter/migrations
COPY lighttpd /usr/share/code-interpreter/lighttpd
ENV APP_DATA_DIR=/usr/share/code-interpreter \
    APP_EXECUTOR_BACKEND=kubernetes \
    APP_LIGHTTPD_BIN=/usr/sbin/lighttpd
USER 1000:1000
EXPOSE 50081
ENTRYPOINT ["/usr/local/bin/code-interpreter"]
