# Pulse API image: the TypeScript sources run with tsx, as `npm start` does.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund
COPY schema.graphql tsconfig.json ./
COPY migrations ./migrations
COPY src ./src
ENV NODE_ENV=production PORT=4000
USER node
EXPOSE 4000
# node itself is PID 1 and receives SIGTERM, so shutdown drains requests in order.
CMD ["node", "--import", "tsx", "src/main.ts"]
