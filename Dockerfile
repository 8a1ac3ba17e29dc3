# digestd in a container: `digestd run` as an unprivileged user, state and seeds in volumes.
# Build: docker build -t digestd .   Run with PostgreSQL: docker compose up (see compose.yaml).

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md LICENSE CHANGELOG.md ./
COPY digestd ./digestd
# shipped inside the wheel as package data (setup.py copies them under digestd/_data)
COPY templates ./templates
COPY samples/seeds ./samples/seeds
COPY config/digestd.toml ./config/
COPY systemd ./systemd
# Wheels of digestd and every dependency, so the final image needs no compiler and no cache.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres]"

FROM python:3.12-slim
# A fixed uid, so a bind-mounted seeds directory can be given to it on the host.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/digestd \
        --shell /usr/sbin/nologin digestd \
    && install -d -o digestd -g digestd -m 0750 /var/lib/digestd/var /var/lib/digestd/seeds
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
ENV DIGESTD_SEEDS_DIR=/var/lib/digestd/seeds \
    DIGESTD_DATA_DIR=/var/lib/digestd/var \
    DIGESTD_HTTP_ADDRESS=0.0.0.0:8080 \
    DIGESTD_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
# numeric, so the runtime can tell it is not root without reading /etc/passwd
USER 10001:10001
WORKDIR /var/lib/digestd
VOLUME ["/var/lib/digestd/var", "/var/lib/digestd/seeds"]
EXPOSE 8080
# 0 when the database answers and, on the leader, the scheduler keeps time (GET /healthz).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["digestd", "healthcheck", "--timeout", "5"]
CMD ["digestd", "run"]
