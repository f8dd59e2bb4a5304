/**
 * Decides which PostgreSQL the whole run uses and tells the test files through
 * PULSE_TEST_ADMIN_URL: the server in TEST_DATABASE_URL / DATABASE_URL, or an
 * embedded one started here in a temporary folder (stopped by global-teardown).
 */
import { redactUrl } from '../../src/db/database';
import { probeCitus } from './citus-database';
import { startScratchPostgres, type ScratchPostgres } from './scratch-postgres';
import { createTemplateDatabase, TEMPLATE_DATABASE_ENV } from './test-database';

declare global {
  // eslint-disable-next-line no-var
  var __pulseTestPostgres: ScratchPostgres | undefined;
  // eslint-disable-next-line no-var
  var __pulseTestTemplate: { drop(): Promise<void> } | undefined;
}

export default async function globalSetup(): Promise<void> {
  await decideCitus();
  const external = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
  if (external) {
    process.env.PULSE_TEST_ADMIN_URL = external;
    process.stdout.write(`\ntests use the PostgreSQL at ${redactUrl(external)}\n`);
    await makeTemplate();
    return;
  }
  const server = await startScratchPostgres('pulse-test');
  globalThis.__pulseTestPostgres = server;
  process.env.PULSE_TEST_ADMIN_URL = server.url;
  process.stdout.write(`\ntests use an embedded PostgreSQL at ${server.url}\n`);
  await makeTemplate();
}

// Private: migrate once per run; every test file's database is a copy of this one.
async function makeTemplate(): Promise<void> {
  const template = await createTemplateDatabase();
  globalThis.__pulseTestTemplate = template;
  process.env[TEMPLATE_DATABASE_ENV] = template.name;
}

// Private: the Citus tests run when TEST_CITUS_URL's cluster answers; otherwise
// they are skipped, and the reason is said once here and in their title.
async function decideCitus(): Promise<void> {
  const skipped = await probeCitus(process.env);
  if (skipped) {
    process.env.PULSE_TEST_CITUS_SKIPPED = skipped;
    process.stdout.write(`\nCitus tests skipped: ${skipped}\n`);
  } else {
    process.stdout.write(`\nCitus tests use the coordinator at ${redactUrl(process.env.TEST_CITUS_URL!)}\n`);
  }
}
