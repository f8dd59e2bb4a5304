# Pulse API image. The build stage compiles the TypeScript ahead of time
# (`npm run build`): the image then runs plain JavaScript, without tsx in the
# request path (docs/performance.md measures the difference).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json schema.graphql ./
COPY migrations ./migrations
COPY src ./src
COPY bench/ttl-store-server.ts ./bench/
RUN npm run build

FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund
COPY --from=build /app/dist ./dist
ENV NODE_ENV=production PORT=4000
USER node
EXPOSE 4000
# node itself is PID 1 and receives SIGTERM, so shutdown drains requests in order.
CMD ["node", "dist/src/main.js"]
