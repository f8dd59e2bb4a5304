export default async function globalTeardown(): Promise<void> {
  await globalThis.__pulseTestTemplate?.drop();
  // The embedded server global-setup started, with its folder; none with TEST_DATABASE_URL.
  await globalThis.__pulseTestPostgres?.stop();
}
