/**
 * Where the JWT signing secret comes from: JWT_SECRET, or, outside production, a
 * random development secret generated once and kept in the data folder (so tokens
 * from `npm run token` keep working across restarts). Production without
 * JWT_SECRET is refused by config validation before this runs. With an identity
 * provider (JWT_JWKS_URL) and no JWT_SECRET there is no secret at all: Pulse
 * then accepts the provider's tokens only, and signs none.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config';
import type { Logger } from '../logger';

export function resolveJwtSecret(config: Config, logger: Logger): string | null {
  if (config.auth.jwtSecret) return config.auth.jwtSecret;
  if (config.auth.jwksUrl) return null;
  if (config.production) throw new Error('JWT_SECRET is required when NODE_ENV=production');

  const file = path.join(config.dataDir, 'jwt-secret');
  try {
    const existing = fs.readFileSync(file, 'utf8').trim();
    if (existing.length >= 32) {
      logger.info(`auth: development mode, JWT secret from ${file} (set JWT_SECRET in production)`);
      return existing;
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const secret = crypto.randomBytes(32).toString('hex');
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o755 });
  fs.writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  logger.warn(`auth: development mode, generated a JWT secret in ${file} (set JWT_SECRET in production)`);
  return secret;
}
