# The console as a container image, from a `wm` built beforehand (the same binary as the
# Debian package's; no compiler in the image):
#
#   cargo build --release -p wm
#   docker build -t whalemountain --build-arg WM_BINARY=target/release/wm .
#   docker run -d -p 8080:8080 -v wm-data:/var/lib/whalemountain \
#       -e WM_AGENTS=... -e WM_AGENT_TOKEN=... whalemountain
#
# The default command is `wm console`, lending from docker agents: the image holds no
# Docker socket. `wm serve` (the local engine) in a container needs the host's socket
# mounted, which gives the console root on the host: prefer the package or the agents.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
ARG WM_BINARY=target/release/wm
COPY ${WM_BINARY} /usr/bin/wm
COPY packaging/wm.toml /etc/whalemountain/wm.toml
RUN groupadd --system whalemountain \
 && useradd --system --gid whalemountain --home-dir /var/lib/whalemountain \
      --shell /usr/sbin/nologin whalemountain \
 && install -d -o whalemountain -g whalemountain -m 0700 /var/lib/whalemountain
USER whalemountain
VOLUME /var/lib/whalemountain
EXPOSE 8080
ENTRYPOINT ["/usr/bin/wm"]
CMD ["console", "--config", "/etc/whalemountain/wm.toml"]
