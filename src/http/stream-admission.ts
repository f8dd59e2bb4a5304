/**
 * Who may open one more live subscription: the one check that every transport of
 * subscriptions (Server-Sent Events at /graphql/stream, Apollo's multipart
 * protocol on /graphql) runs before it starts one, so a client cannot get round
 * the caps by switching protocol.
 */
import type http from 'node:http';
import type { PulseContext, RequestInfo } from '../graphql/context';
import type { StreamSlots } from '../limits/stream-slots';
import type { Metrics } from '../observability/metrics';
import { sendJson } from './send-json';
import type { OperationRequest, PreparedDocument, Started, SubscriptionOperations } from './subscription-operations';

export interface StreamAdmission {
  /** Places for open streams, per client and per process (shared by every transport). */
  slots: StreamSlots;
  metrics?: Pick<Metrics, 'streamsRefused'>;
}

/** Seconds a refused client is asked to wait before opening another stream. */
const RETRY_AFTER_SECONDS = 5;

/**
 * Takes a place for one more stream of this caller (the token's user, or the
 * address without a valid token) and returns its release, which the caller runs
 * once when the stream ends; or answers the refusal itself (429 for this client,
 * 503 for a full process, both with Retry-After) and returns null.
 */
function admitStream(
  admission: StreamAdmission,
  context: PulseContext,
  info: RequestInfo,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): (() => void) | null {
  const viewer = context.viewer();
  const slot = admission.slots.acquire(viewer ? `user:${viewer}` : `address:${info.clientAddress}`);
  if (slot.granted) return slot.release;
  admission.metrics?.streamsRefused.inc({ reason: slot.refusal === 'client' ? 'client_limit' : 'process_full' });
  req.resume();
  res.setHeader('retry-after', String(RETRY_AFTER_SECONDS));
  sendJson(
    res,
    slot.refusal === 'client' ? 429 : 503,
    slot.refusal === 'client'
      ? {
          errors: [
            {
              message: `Too many open streams for this client (at most ${admission.slots.perClient}); close one, or retry after ${RETRY_AFTER_SECONDS} s`,
              extensions: { code: 'RATE_LIMITED' },
            },
          ],
        }
      : { errors: [{ message: `This server holds as many streams as it can; retry after ${RETRY_AFTER_SECONDS} s`, extensions: { code: 'UNAVAILABLE' } }] },
  );
  return null;
}

/**
 * Admission, then the subscription's start, as every transport does it: the
 * started subscription (its events, or the refusal for the transport to write in
 * its own protocol), or null when admission refused it (and answered). The place
 * is given back when the response closes.
 */
export async function admitAndStart(
  admission: StreamAdmission,
  operations: SubscriptionOperations,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  info: RequestInfo,
  request: OperationRequest,
  prepared: PreparedDocument,
): Promise<Started | null> {
  const context = await operations.contextFor(info);
  const release = admitStream(admission, context, info, req, res);
  if (!release) return null;
  res.once('close', release);
  return operations.start(prepared, request, context);
}
