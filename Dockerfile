# syntax=docker/dockerfile:1
# Tokenwire gateway image. Build: docker build -t tokenwire . ; run: docker run -p 8080:8080 tokenwire
# Configuration is environment only (see src/config.ts); no secrets are baked into the image.

# --- build: full dependency tree, compile TypeScript to dist/ ---------------------------------
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- runtime: production dependencies and the compiled output only ---------------------------
FROM node:20-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# Files stay root-owned (read-only for the process); the gateway writes nothing to disk.
USER node
EXPOSE 8080
# Plain HTTP liveness probe with node's built-in fetch (no curl in the slim image).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node directly (not `npm start`, whose prestart would rebuild), as PID 1 so it gets SIGTERM.
CMD ["node", "dist/src/server.js"]
