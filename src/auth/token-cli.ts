/**
 * `npm run -s token -- <userId> [expiresInSeconds]`: prints a bearer token for
 * local use, signed with the same secret the server uses (JWT_SECRET, or the
 * development secret in the data folder).
 */
import { ConfigError, loadConfig } from '../config';
import { createLogger } from '../logger';
import { parseUserId } from '../presence/user-id';
import { resolveJwtSecret } from './jwt-secret';
import { createTokenIssuer } from './tokens';

function main(argv: string[]): number {
  const [rawUserId, rawTtl = String(24 * 3600)] = argv;
  if (!rawUserId) {
    process.stderr.write('usage: npm run -s token -- <userId> [expiresInSeconds]\n');
    return 2;
  }
  try {
    const config = loadConfig();
    const userId = parseUserId(rawUserId);
    const ttl = Number(rawTtl);
    if (!Number.isInteger(ttl) || ttl <= 0) throw new Error(`Invalid lifetime "${rawTtl}": expected a whole number of seconds`);
    const secret = resolveJwtSecret(config, createLogger('warn'));
    if (!secret) throw new Error('No JWT_SECRET: with JWT_JWKS_URL alone, tokens come from the identity provider, not from Pulse');
    process.stdout.write(`${createTokenIssuer(secret).sign(userId, ttl)}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`${error instanceof ConfigError || error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

process.exitCode = main(process.argv.slice(2));
