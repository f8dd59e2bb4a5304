import fs from 'node:fs';

export default async function globalTeardown(): Promise<void> {
  await globalThis.__pulseTestTemplate?.drop();
  const started = globalThis.__pulseTestPostgres;
  if (!started) return;
  await started.server.stop();
  fs.rmSync(started.folder, { recursive: true, force: true });
}
