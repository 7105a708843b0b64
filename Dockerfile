# syntax=docker/dockerfile:1
# Tokenwire gateway image. Build: docker build -t tokenwire . ; run: docker run -p 8080:8080 tokenwire
# Configuration is environment only (see README "Configuration"); no secrets are baked into the image.
# Node 22 LTS (package.json engines: >=20.19), Debian bookworm slim.

# --- build: full dependency tree, compile TypeScript to dist/ ---------------------------------
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- runtime: production dependencies and the compiled output only ---------------------------
FROM node:22-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The chat page's static files (read at run time from src/web; the client library is in dist).
COPY --from=build /app/src/web ./src/web
# Prompt chain examples, for CHAINS_FILE=/app/chains/example.json.
COPY chains ./chains
# Files stay root-owned (read-only for the process); the gateway writes nothing to disk.
USER node
EXPOSE 8080
# Plain HTTP liveness probe with node's built-in fetch (no curl in the slim image).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM: sessions get 1012 and replies finish into the store within SHUTDOWN_GRACE_MS.
STOPSIGNAL SIGTERM
# node directly (not `npm start`, whose prestart would rebuild), as PID 1 so it gets SIGTERM.
CMD ["node", "dist/src/server.js"]
