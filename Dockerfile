# syntax=docker/dockerfile:1
# Multi-stage build: compile with the full Rust toolchain, run on a slim Debian as a non-root user.

FROM rust:1-bookworm AS builder
WORKDIR /src
# Everything the build reaches: the workspace manifest and lock, the server (src), the Lua
# scripts and migrations it embeds (include_str!, sqlx::migrate!), and the tool crates the
# binary links. scripts/check-docker-context.sh builds exactly these files (CI, no Docker).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY lua ./lua
COPY migrations ./migrations
COPY tools ./tools
# Cache mounts keep the registry and build artefacts between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin jupang \
    && cp target/release/jupang /usr/local/bin/jupang

FROM debian:bookworm-slim
# ca-certificates for outbound TLS-terminating proxies; curl only for the healthcheck.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin jupang
COPY --from=builder /usr/local/bin/jupang /usr/local/bin/jupang
USER jupang
WORKDIR /tmp
ENV JUPANG_LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["jupang"]
CMD ["serve"]
