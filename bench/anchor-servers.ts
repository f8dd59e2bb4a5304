/**
 * The anchors Pulse is measured against: servers written the obvious way, with
 * nothing of Pulse in them, so that a ratio says what Pulse's own layers cost.
 * Benchmark use only; started by bench/heartbeats.ts as
 * `anchor-servers.ts <anchor>` with PORT, HOST and DATABASE_URL.
 *
 *  - http-204: bare node:http answering 204 to everything (the floor of an HTTP
 *    request on this machine; compared with POST /pulse).
 *  - apollo-pg: stock Apollo Server 5 (`startStandaloneServer`) with a
 *    `statuses(ids)` query resolved by one `= ANY($1)` select on pulse through a
 *    pg Pool; lastSeen as the Date pg parses, written out with toISOString.
 *  - http-pg: node:http with the same select, the timestamp formatted by
 *    PostgreSQL, answering GET /status/profile?userId=1,2,3 with JSON.
 *
 * Each answers GET /readyz with 200 once it can serve (Apollo's standalone server
 * answers every path, /readyz included, with a GraphQL answer).
 */
import http from 'node:http';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import pg from 'pg';

const THRESHOLD = "interval '30 seconds'";

async function main(): Promise<void> {
  const anchor = process.argv[2];
  const port = Number(process.env.PORT);
  const host = process.env.HOST ?? '127.0.0.1';
  const pool = () => new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DB_POOL_MAX ?? 10) });

  switch (anchor) {
    case 'http-204': {
      http
        .createServer((req, res) => {
          req.resume();
          res.writeHead(req.url === '/readyz' ? 200 : 204);
          res.end();
        })
        .listen(port, host);
      break;
    }
    case 'http-pg': {
      const db = pool();
      const select = `select user_id::text as "userId", last_hb >= now() - ${THRESHOLD} as online,
        to_char(last_hb at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as "lastSeen"
        from pulse where user_id = any($1::bigint[])`;
      http
        .createServer((req, res) => {
          const url = new URL(req.url ?? '/', 'http://anchor.invalid');
          if (url.pathname === '/readyz') return void res.writeHead(200).end();
          const ids = (url.searchParams.get('userId') ?? '').split(',');
          db.query(select, [ids]).then(
            ({ rows }) => {
              res.writeHead(200, { 'content-type': 'application/json' });
              res.end(JSON.stringify(rows));
            },
            () => res.writeHead(500).end(),
          );
        })
        .listen(port, host);
      break;
    }
    case 'apollo-pg': {
      const db = pool();
      const server = new ApolloServer({
        typeDefs: `
          type Status { userId: ID! online: Boolean! lastSeen: String }
          type Query { statuses(ids: [ID!]!): [Status!]! }
        `,
        resolvers: {
          Query: {
            statuses: async (_: unknown, { ids }: { ids: string[] }) => {
              const { rows } = await db.query<{ user_id: string; online: boolean; last_hb: Date }>(
                `select user_id::text, last_hb >= now() - ${THRESHOLD} as online, last_hb from pulse where user_id = any($1::bigint[])`,
                [ids],
              );
              const byId = new Map(rows.map((row) => [row.user_id, row]));
              return ids.map((id) => {
                const row = byId.get(id);
                return { userId: id, online: row?.online ?? false, lastSeen: row?.last_hb.toISOString() ?? null };
              });
            },
          },
        },
      });
      await startStandaloneServer(server, { listen: { port, host } });
      break;
    }
    default:
      throw new Error(`Unknown anchor ${JSON.stringify(anchor)}: expected http-204, apollo-pg or http-pg`);
  }
  process.once('SIGTERM', () => process.exit(0));
  process.once('SIGINT', () => process.exit(0));
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
