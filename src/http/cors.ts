/**
 * Cross-origin access for browser apps on other origins (app.example.com calling
 * pulse.example.com): the heartbeat, the event stream, GraphQL and the SDK.
 *
 * Pulse authenticates with bearer tokens in the Authorization header, never with
 * cookies, so a page on another origin can only act as a user whose token it
 * already holds; answering any origin (`*`, the default) gives a foreign page
 * nothing it could not do with that token anyway. CORS_ALLOWED_ORIGINS narrows it
 * to a list. Credentials (cookies) are never allowed.
 */
import type http from 'node:http';

const ALLOWED_HEADERS = 'authorization, content-type, accept, apollo-require-preflight, x-apollo-operation-name, x-request-id';
const EXPOSED_HEADERS = 'retry-after, x-request-id';

/**
 * Sets the CORS headers for `req` on `res`; returns true when the request was a
 * preflight (OPTIONS) and has been answered.
 */
export function applyCors(allowedOrigins: readonly string[] | '*', req: http.IncomingMessage, res: http.ServerResponse): boolean {
  const origin = req.headers.origin;
  if (!origin) return false;
  if (allowedOrigins === '*') {
    res.setHeader('access-control-allow-origin', '*');
  } else if (allowedOrigins.includes(origin)) {
    res.setHeader('access-control-allow-origin', origin);
    res.setHeader('vary', 'origin');
  } else {
    return false;
  }
  res.setHeader('access-control-expose-headers', EXPOSED_HEADERS);
  if (req.method !== 'OPTIONS') return false;
  res.writeHead(204, {
    'access-control-allow-methods': 'GET, POST',
    'access-control-allow-headers': ALLOWED_HEADERS,
    'access-control-max-age': '600',
  });
  res.end();
  return true;
}
