# syntax=docker/dockerfile:1
# Build stage: compile TypeScript with the dev dependencies. (--ignore-scripts: the prepare
# script builds dist/ for a checkout; here src/ is copied and built explicitly below.)
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY console ./console
RUN npm run build

# Runtime stage: production dependencies and the compiled code only, as a non-root user.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    DATA_DIR=/data \
    ADMIN_HOST=0.0.0.0
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config ./config
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080 8081
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "--single-threaded-gc", "--no-memory-reducer", "dist/main.js"]
