# Stand-in for rust:1.95-bookworm, built by docker/test.sh ONLY when that image cannot be
# pulled (no registry reachable). Not for users: with a registry, the real image is used.
#
# The base is the local debian:bookworm-slim (the real one, or test.sh's debootstrap
# stand-in); the toolchain is the build machine's own stable rustup toolchain (the
# context's toolchain/ folder, docs left out), laid out as in the official image:
# RUSTUP_HOME=/usr/local/rustup, CARGO_HOME=/usr/local/cargo, both on PATH.
# No CA certificate of the build machine is baked in: a TLS-inspecting proxy's CA reaches
# docker/Dockerfile's build as its `ca` BuildKit secret, as it would for a user.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates pkg-config \
 && rm -rf /var/lib/apt/lists/*
COPY toolchain/ /usr/local/rustup/toolchains/stable-x86_64-unknown-linux-gnu/
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /usr/local/cargo/bin && rustc --version && cargo --version
LABEL org.convoy.standin="rust:1.95-bookworm: debian:bookworm-slim + gcc + the build machine's stable toolchain"
