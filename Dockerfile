# sluice container image: built with the `release` preset on Debian 12, run on
# debian:bookworm-slim with only the shared libraries the binary links.
#
#   docker build -t sluice:0.1.0 .
#   docker run -p 8080:8080 -v $PWD/my.yaml:/etc/sluice/sluice.yaml:ro sluice:0.1.0
#
# docs/deploy.md explains the choices. integration/test_container_image.py checks that every
# library the release binary loads comes from a package the runtime stage installs: after a
# dependency change, run it (./test.sh does) and fix the list it names.

FROM debian:bookworm AS build

# What `cmake --preset release` needs to configure and build. The test libraries (gtest,
# gmock, rapidcheck, benchmark) are here only because configuring reads tests/; nothing of
# them reaches the runtime image.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libboost1.81-dev libboost-url1.81-dev libssl-dev libnghttp2-dev libre2-dev \
      libyaml-cpp-dev prometheus-cpp-dev libhiredis-dev libc-ares-dev libgoogle-perftools-dev \
      zlib1g-dev libbrotli-dev libzstd-dev \
      libgtest-dev libgmock-dev librapidcheck-dev libbenchmark-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# The preset uses ccache as the compiler launcher; a one-shot image build gains nothing from
# it, so the launcher is switched off instead of installing ccache.
RUN cmake --preset release -DCMAKE_CXX_COMPILER_LAUNCHER= \
 && cmake --build --preset release --target sluice \
 && strip --strip-debug -o /sluice build/release/proxy/sluice \
 && /sluice --version


FROM debian:bookworm-slim

# Exactly the packages of the libraries `ldd sluice` lists, plus CA certificates for upstream
# TLS with the system store (clusters[].tls without ca_file).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates \
      libc6 libgcc-s1 libstdc++6 \
      libssl3 libnghttp2-14 libre2-9 libyaml-cpp0.7 libboost-url1.81.0 \
      libprometheus-cpp-core1.0 libhiredis0.14 libc-ares2 libtcmalloc-minimal4 \
      zlib1g libbrotli1 libzstd1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 sluice \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin sluice

COPY --from=build /sluice /usr/local/bin/sluice
COPY config/examples/container.yaml /etc/sluice/sluice.yaml

# Numeric, so that Kubernetes' runAsNonRoot can verify it (the chart runs as 65532 too).
USER 65532:65532
EXPOSE 8080 9901
# sluice is PID 1 without an init: it handles SIGTERM (drain, then exit) and SIGHUP (reload)
# itself and starts no child processes, so there is nothing to reap or forward.
STOPSIGNAL SIGTERM
ENTRYPOINT ["sluice"]
CMD ["-c", "/etc/sluice/sluice.yaml"]
