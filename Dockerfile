# infergate container image (multi-stage).
#   docker build -t infergate:latest .
#   docker run --rm infergate:latest --help
# The default command follows the API server of the cluster it runs in (service account, see
# deploy/infergate.yaml and docs/kubernetes.md) and writes status back.

# ---- build: the -dev packages of scripts/deps.sh (no test, fuzz or demo tools) and a release build
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config ca-certificates \
      libuv1-dev libssl-dev libjansson-dev libyaml-dev libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DIG_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" --target infergate \
 && strip /build/infergate \
 && /build/infergate --help >/dev/null

# ---- runtime: only the shared libraries the binary links
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libssl3 libjansson4 libyaml-0-2 libnghttp2-14 libprotobuf-c1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 infergate \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin infergate
COPY --from=build /build/infergate /usr/local/bin/infergate
USER 65532:65532
# gateway listener (deploy/gateway.yaml) and admin (/healthz, /readyz, /metrics)
EXPOSE 8080 9901
ENTRYPOINT ["/usr/local/bin/infergate"]
CMD ["serve", "--kube", "--write-status"]
