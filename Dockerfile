# The API image: built from Debian 12 with the same install script and the same make target as CI
# (scripts/install-deps, `make build`), so the two cannot drift. `make up` builds it
# (scripts/compose); by hand: `docker build -t chatbot-api .` (podman: add --network host).

# ---- build: the toolchain, the libraries' -dev packages, the project's build ----
FROM debian:12 AS build
WORKDIR /src
# The install script alone first: its layer stays cached while only the sources change.
COPY scripts/install-deps scripts/install-deps
RUN scripts/install-deps
# What `make build` reads, and nothing else: a change to the docs, the tests or the compose files
# does not rebuild the image. (A new top-level input of the build goes here too; CI's
# `make test-compose` builds this image, so a missing one fails there.)
COPY Makefile CMakeLists.txt package.json package-lock.json ./
COPY cmake cmake
COPY src src
# `make build` runs `npm ci` (Swagger UI is embedded at build time). Behind a TLS-intercepting
# proxy, pass its CA bundle: scripts/compose does under podman (a read-only mount, not a layer).
ARG NODE_EXTRA_CA_CERTS=
# The release binary only: no unit tests, no load generator (CI builds and runs those, with the
# same script and the same Makefile; `make build` compiles with -j$(nproc)).
RUN make build CMAKE_FLAGS="-DCHAT_BUILD_TESTS=OFF -DCHAT_BUILD_BENCH=OFF" \
 && install -D -m 0755 build/release/chatbot /out/chatbot \
 && strip /out/chatbot

# ---- runtime: the shared libraries the binary links, the binary, nothing else ----
FROM debian:12
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libboost-json1.81.0 libsqlite3-0 libpq5 libssl3 libspdlog1.10 libfmt9 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/chatbot --create-home \
      --shell /usr/sbin/nologin chatbot
COPY --from=build /out/chatbot /usr/local/bin/chatbot
# A library the binary gained but the list above lacks fails the build here, not at run time.
RUN ! ldd /usr/local/bin/chatbot | grep 'not found' && chatbot --version
USER chatbot
WORKDIR /var/lib/chatbot
ENV CHATBOT_HOST=0.0.0.0 \
    CHATBOT_PORT=8000 \
    DATABASE_URL=sqlite:/var/lib/chatbot/chatbot.db
EXPOSE 8000
STOPSIGNAL SIGTERM
ENTRYPOINT ["chatbot"]
CMD ["serve"]
