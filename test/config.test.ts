import os from 'node:os';
import { ConfigError, loadConfig } from '../src/config';

describe('loadConfig', () => {
  it('has working defaults for a fresh machine', () => {
    const config = loadConfig({});
    expect(config.http.port).toBe(4000);
    expect(config.database.url).toBeNull();
    expect(config.database.poolMax).toBe(10);
    expect(config.database.migrateOnStart).toBe(true);
    expect(config.presence).toEqual({ thresholdSeconds: 30, statusesMaxIds: 1000, heartbeatMinIntervalMs: 1000, minWriteGapSeconds: 5 });
    expect(config.heartbeatBatching).toEqual({ enabled: true, windowMs: 0, maxSize: 1000, maxInFlight: 2 });
    expect(config.auth).toMatchObject({ jwtSecret: null, signupTokenTtlSeconds: 30 * 86_400, jwksUrl: null, requireExp: false });
    expect(config.production).toBe(false);
  });

  it('reads every variable', () => {
    const config = loadConfig({
      PORT: '8080',
      DATABASE_URL: 'postgres://u:p@db:5432/pulse',
      DB_POOL_MAX: '20',
      MIGRATE_ON_START: 'false',
      PRESENCE_THRESHOLD_SECONDS: '45',
      STATUSES_MAX_IDS: '500',
      JWT_SECRET: 'a'.repeat(32),
    });
    expect(config.http.port).toBe(8080);
    expect(config.database).toMatchObject({ url: 'postgres://u:p@db:5432/pulse', poolMax: 20, migrateOnStart: false });
    expect(config.presence).toMatchObject({ thresholdSeconds: 45, statusesMaxIds: 500 });
  });

  it('refuses a minimum write gap that is not below the presence threshold', () => {
    expect(() => loadConfig({ PRESENCE_THRESHOLD_SECONDS: '10', HEARTBEAT_MIN_WRITE_GAP_SECONDS: '10' })).toThrow(
      /HEARTBEAT_MIN_WRITE_GAP_SECONDS: expected less than PRESENCE_THRESHOLD_SECONDS \(10\)/,
    );
    expect(loadConfig({ HEARTBEAT_BATCHING: 'off' }).heartbeatBatching.enabled).toBe(false);
  });

  it('derives the minimum write gap from a threshold set alone, and still refuses a bad explicit one', () => {
    // A threshold below the 5 s gap used to stop the start.
    expect(loadConfig({ PRESENCE_THRESHOLD_SECONDS: '4' }).presence).toMatchObject({ thresholdSeconds: 4, minWriteGapSeconds: 4 / 6 });
    expect(loadConfig({ PRESENCE_THRESHOLD_SECONDS: '0.5' }).presence.minWriteGapSeconds).toBeCloseTo(0.5 / 6);
    expect(loadConfig({ PRESENCE_THRESHOLD_SECONDS: '120' }).presence.minWriteGapSeconds).toBe(5);
    // An explicit value is the operator's: kept, and checked.
    expect(loadConfig({ PRESENCE_THRESHOLD_SECONDS: '4', HEARTBEAT_MIN_WRITE_GAP_SECONDS: '0' }).presence.minWriteGapSeconds).toBe(0);
    expect(() => loadConfig({ PRESENCE_THRESHOLD_SECONDS: '4', HEARTBEAT_MIN_WRITE_GAP_SECONDS: '5' })).toThrow(
      /HEARTBEAT_MIN_WRITE_GAP_SECONDS: expected less than PRESENCE_THRESHOLD_SECONDS \(4\).*\(got "5"\)/,
    );
  });

  it('reports every problem at once, naming the variable and the value', () => {
    let error: ConfigError | undefined;
    try {
      loadConfig({ PORT: 'eighty', DB_POOL_MAX: '0', MIGRATE_ON_START: 'maybe', DATABASE_URL: 'mysql://x', JWT_SECRET: 'short' });
    } catch (e) {
      error = e as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.problems).toHaveLength(5);
    expect(error!.message).toContain('PORT: expected a whole number (got "eighty")');
    expect(error!.message).toContain('DB_POOL_MAX: expected at least 1 (got "0")');
    expect(error!.message).toContain('MIGRATE_ON_START: expected true or false (got "maybe")');
    expect(error!.message).toContain('DATABASE_URL: expected a postgres:// or postgresql:// URL');
    expect(error!.message).toContain('JWT_SECRET: expected at least 32 characters');
  });

  it('refuses production without a JWT secret', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/JWT_SECRET: required when NODE_ENV=production/);
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'b'.repeat(32) }).production).toBe(true);
  });

  it('reads PULSE_WORKERS as a number of workers or auto, one by default', () => {
    expect(loadConfig({}).cluster).toEqual({ workers: 1, workerIndex: null });
    expect(loadConfig({ PULSE_WORKERS: '4' }).cluster.workers).toBe(4);
    expect(loadConfig({ PULSE_WORKERS: 'auto' }).cluster.workers).toBe(os.availableParallelism());
    expect(() => loadConfig({ PULSE_WORKERS: '0' })).toThrow(/PULSE_WORKERS: expected at least 1 \(got "0"\)/);
    expect(() => loadConfig({ PULSE_WORKERS: 'many' })).toThrow(/PULSE_WORKERS: expected a whole number of workers, or auto \(got "many"\)/);
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ PORT: '', DATABASE_URL: '' }).http.port).toBe(4000);
  });

  it('reads one read replica or a list of them, with a lag limit of a sixth of the threshold by default', () => {
    const primary = 'postgres://u:p@db:5432/pulse';
    expect(loadConfig({ DATABASE_URL: primary }).database).toMatchObject({ readUrls: [], readReplicaMaxLagSeconds: 5 });
    const config = loadConfig({
      DATABASE_URL: primary,
      READ_DATABASE_URL: 'postgres://u:p@replica-1:5432/pulse, postgresql://u:p@replica-2/pulse',
      PRESENCE_THRESHOLD_SECONDS: '60',
    });
    expect(config.database.readUrls).toEqual(['postgres://u:p@replica-1:5432/pulse', 'postgresql://u:p@replica-2/pulse']);
    expect(config.database.readReplicaMaxLagSeconds).toBe(10);
    expect(config.database.readReplicaCheckIntervalMs).toBe(1000);
  });

  it('refuses a bad replica list, replicas without a primary, and a lag limit that would show online users offline', () => {
    let error: ConfigError | undefined;
    try {
      loadConfig({ READ_DATABASE_URL: 'postgres://replica/pulse,mysql://other', READ_REPLICA_MAX_LAG_SECONDS: '26' });
    } catch (e) {
      error = e as ConfigError;
    }
    expect(error!.message).toContain('READ_DATABASE_URL: expected a postgres:// or postgresql:// URL, or a comma-separated list of them');
    expect(() => loadConfig({ READ_DATABASE_URL: 'postgres://replica/pulse' })).toThrow(/READ_DATABASE_URL: needs DATABASE_URL too/);
    expect(() =>
      loadConfig({ DATABASE_URL: 'postgres://db/pulse', READ_DATABASE_URL: 'postgres://replica/pulse', READ_REPLICA_MAX_LAG_SECONDS: '25' }),
    ).toThrow(/READ_REPLICA_MAX_LAG_SECONDS: expected less than PRESENCE_THRESHOLD_SECONDS minus HEARTBEAT_MIN_WRITE_GAP_SECONDS \(25\).*\(got "25"\)/);
  });

  it('is frozen', () => {
    const config = loadConfig({});
    expect(() => {
      (config.http as { port: number }).port = 1;
    }).toThrow(TypeError);
  });
});

describe('loadConfig for tools', () => {
  it('does not ask DBA tools for the JWT secret in production', () => {
    expect(loadConfig({ NODE_ENV: 'production' }, { forServer: false }).production).toBe(true);
  });
});
